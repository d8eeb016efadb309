package client

import (
	"context"
	"math/rand/v2"
	"time"
)

// redialer is the one reconnect loop of the client, shared by the
// interactive and the script mode: after a lost connection it waits the
// backoff's delay and dials again, until it connects, ctx ends, an error
// comes that must not be retried (fatal), or the attempts allowed for one
// outage run out.
//
// With several addresses (Config.Addrs) one attempt tries each once,
// starting with a random one of the others and ending with the address of
// the lost connection, so that the clients of a node that died spread over
// the live nodes at once and try the dead one last. The first attempt of an outage then waits only a short
// random delay (FailoverDelay), not the backoff's.
type redialer struct {
	cfg   *Config
	bo    reconnectBackoff
	limit int // attempts per outage; 0 for no limit
	tries int // attempts in the current outage
	last  int // index of the address of the last connection
	// pick chooses where a redial starts among the other addresses:
	// a number in [0, k). Nil means at random.
	pick func(k int) int

	// failedOver, if set, is told when an address failed and the next
	// is tried without waiting.
	failedOver func(addr string, err error, next string)

	// waiting, if set, is told before each wait: why the connection or
	// the last attempt failed, the delay, and the attempt's number.
	waiting func(cause error, delay time.Duration, attempt int)
}

// gaveUpError is the end of a redial whose attempts ran out; cause is the
// last failure.
type gaveUpError struct{ cause error }

func (e *gaveUpError) Error() string { return e.cause.Error() }
func (e *gaveUpError) Unwrap() error { return e.cause }

// redial reconnects after cause ended the connection. The error is fatal
// (from Dial), ctx's, or a *gaveUpError.
func (r *redialer) redial(ctx context.Context, cause error) (*Link, error) {
	for {
		if r.limit > 0 && r.tries >= r.limit {
			return nil, &gaveUpError{cause}
		}
		r.tries++
		var d time.Duration
		if r.tries == 1 && len(r.cfg.addrs()) > 1 {
			d = r.bo.FailoverDelay()
		} else {
			d = r.bo.Next()
		}
		if r.cfg.testOnlyRedialDelay > 0 {
			d = r.cfg.testOnlyRedialDelay
		}
		if r.waiting != nil {
			r.waiting(cause, d, r.tries)
		}
		if err := sleepCtx(ctx, d); err != nil {
			return nil, err
		}
		if r.cfg.testOnlyRedialHold != nil {
			select {
			case <-r.cfg.testOnlyRedialHold:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		pick := r.pick
		if pick == nil {
			pick = rand.IntN
		}
		l, err := dialAny(ctx, r.cfg, failoverOrder(len(r.cfg.addrs()), r.last, pick), r.failedOver)
		if err == nil {
			r.last = l.index
			return l, nil
		}
		if fatal(err) {
			return nil, err
		}
		cause = err
	}
}

// connected notes the first connection, made before any redial.
func (r *redialer) connected(l *Link) { r.last = l.index }

// progress says the connection works again: the next outage starts from
// the shortest delay with every attempt allowed.
func (r *redialer) progress() {
	r.tries = 0
	r.bo.Reset()
}
