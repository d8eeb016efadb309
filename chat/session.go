package chat

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// session is one Serve call. Its reader is the Serve goroutine, its writer
// the one goroutine writeLoop runs in; everything else belongs to the loop.
type session struct {
	h     *Hub
	id    uint64
	name  string
	admin bool
	conn  Conn

	// out carries encoded events to the writer. Only the loop sends on it,
	// and it keeps one slot beyond cfg.queue free for the last notice.
	out        chan []byte
	drained    chan struct{} // poked by the writer after each write and the loop after each request
	inflight   atomic.Int32  // requests passed to the loop and not yet handled
	end        chan struct{} // closed by the loop: flush out, then close conn
	writerDone chan struct{}
	closeOnce  sync.Once

	bucket bucket // the reader's

	// Owned by the loop.
	user         *user
	loggedIn     bool
	refused      bool  // attached only to send a refusal
	result       error // what Serve returns, when the hub decided
	ending       bool
	stalled      bool
	stalledSince time.Time
	dropped      int
	attachedAt   time.Time
	lastSeen     time.Time
	lastPing     time.Time
	pingSeq      uint64
	flushTimer   *time.Timer
}

func (h *Hub) newSession(c Conn, id Identity) *session {
	return &session{
		h:          h,
		id:         h.nextSession.Add(1),
		name:       foldName(id.User),
		admin:      id.Admin,
		conn:       c,
		out:        make(chan []byte, h.cfg.queue+1),
		drained:    make(chan struct{}, 1),
		end:        make(chan struct{}),
		writerDone: make(chan struct{}),
		bucket:     bucket{burst: h.cfg.floodBurst, rate: h.cfg.floodRate, tokens: h.cfg.floodBurst},
	}
}

// readLoop passes the client's requests to the loop until ReadMessage
// fails. The flood limit is applied here, before the loop sees a request.
func (s *session) readLoop() error {
	for {
		// Backpressure: a client that sends faster than it reads its own
		// answers waits here (and so, through the transport, in its own
		// writes) instead of overflowing its queue and losing them.
		for s.inflight.Load() > 0 || len(s.out) > s.h.cfg.queue/2 {
			select {
			case <-s.drained:
			case <-s.writerDone:
				return ErrClosed
			case <-s.h.done:
				return ErrClosed
			}
		}
		p, err := s.conn.ReadMessage()
		if err != nil {
			return err
		}
		req, derr := DecodeRequest(p)
		if req == nil || req.Type != TypePong {
			if ok, wait := s.bucket.take(time.Now()); !ok {
				derr = &floodError{wait: wait}
			}
		}
		s.inflight.Add(1)
		select {
		case s.h.in <- inbound{s: s, req: req, err: derr}:
		case <-s.h.done:
			return ErrClosed
		}
	}
}

// writeLoop drains out, coalescing whatever is pending into one
// WriteMessages call. When end is closed it sends what is left and closes
// the Conn.
func (s *session) writeLoop() {
	defer close(s.writerDone)
	batch := make([][]byte, 0, maxBatch)
	for {
		select {
		case b := <-s.out:
			batch = s.fill(append(batch[:0], b))
			err := s.conn.WriteMessages(batch)
			clear(batch)
			if err != nil {
				s.closeConn() // so that the reader stops too
				return
			}
			s.poke()
		case <-s.end:
			for {
				batch = s.fill(batch[:0])
				if len(batch) == 0 {
					break
				}
				err := s.conn.WriteMessages(batch)
				clear(batch)
				if err != nil {
					break
				}
			}
			s.closeConn()
			return
		}
	}
}

// fill appends pending events to batch without blocking.
func (s *session) fill(batch [][]byte) [][]byte {
	for len(batch) < maxBatch {
		select {
		case b := <-s.out:
			batch = append(batch, b)
		default:
			return batch
		}
	}
	return batch
}

// poke wakes the reader if it waits for room in the queue.
func (s *session) poke() {
	select {
	case s.drained <- struct{}{}:
	default:
	}
}

func (s *session) closeConn() {
	s.closeOnce.Do(func() { _ = s.conn.Close() })
}

// bucket is a token bucket: burst tokens at most, refilled at rate per
// second; a negative rate admits everything.
type bucket struct {
	burst, rate, tokens float64
	last                time.Time
}

// take spends one token if there is one; otherwise it says how long until
// there will be.
func (b *bucket) take(now time.Time) (bool, time.Duration) {
	if b.rate < 0 {
		return true, 0
	}
	if !b.last.IsZero() {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	return false, max(wait, time.Millisecond)
}

type floodError struct{ wait time.Duration }

func (e *floodError) Error() string { return "chat: too many requests" }
