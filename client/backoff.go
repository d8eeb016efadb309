package client

// Reconnect delays grow exponentially with "equal jitter": the delay for a
// retry is drawn uniformly from the upper half of the current step, so
// clients that lost the same server spread out instead of returning in
// lockstep, while every delay still grows with the step.

import (
	"context"
	"math/rand/v2"
	"time"
)

const (
	backoffMin = 1 * time.Second
	backoffMax = 60 * time.Second
)

// backoffDelay is the wait before reconnect attempt number attempt (0 for
// the first retry). The step is backoffMin doubled attempt times, capped at
// backoffMax; the delay is step/2 + r*step/2 for r in [0, 1], and never
// below backoffMin. So attempt 0 waits 1 s, attempt 1 waits 1-2 s, attempt 2
// 2-4 s, ..., and from attempt 6 on 30-60 s.
func backoffDelay(attempt int, r float64) time.Duration {
	attempt = max(attempt, 0)
	step := backoffMax
	if attempt < 6 { // 1 s << 6 = 64 s is past the cap
		step = backoffMin << attempt
	}
	r = min(max(r, 0), 1)
	d := step/2 + time.Duration(r*float64(step/2))
	return min(max(d, backoffMin), backoffMax)
}

// reconnectBackoff hands out the delays for consecutive reconnect attempts.
// The zero value is ready and uses math/rand/v2.
type reconnectBackoff struct {
	attempt int
	rand    func() float64 // in [0, 1); nil means rand.Float64
}

// Next returns the delay before the next attempt and counts the attempt.
func (b *reconnectBackoff) Next() time.Duration {
	r := b.rand
	if r == nil {
		r = rand.Float64
	}
	d := backoffDelay(b.attempt, r())
	if b.attempt < 1<<20 {
		b.attempt++
	}
	return d
}

// failoverSpread bounds the wait before the first reconnect attempt of an
// outage when the server has other addresses (Config.Addrs): the attempt
// goes to another address than the lost one, which is likely up, so the
// backoff's second would only delay the failover. The wait is drawn
// uniformly from [0, failoverSpread), so that the clients of a node that
// died reach the next node spread out rather than in one instant.
const failoverSpread = 500 * time.Millisecond

// FailoverDelay returns the wait before the first attempt of an outage
// with other addresses to try. It does not count as an attempt: if that
// round fails, Next goes on from the shortest backoff delay.
func (b *reconnectBackoff) FailoverDelay() time.Duration {
	r := b.rand
	if r == nil {
		r = rand.Float64
	}
	return time.Duration(min(max(r(), 0), 1) * float64(failoverSpread))
}

// Reset starts over from the shortest delay. Call it once a connection has
// logged in and stayed up for a while (say, longer than backoffMax), so
// that a server which accepts and then drops at once is not hammered every
// second.
func (b *reconnectBackoff) Reset() { b.attempt = 0 }

// sleepCtx waits for d or until ctx is done, whichever comes first, and
// returns ctx.Err() in the second case.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
