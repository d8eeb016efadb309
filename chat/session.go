package chat

import (
	"crypto/ed25519"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"securechat/msgsig"
)

// session is one Serve call. Its reader is the Serve goroutine, its writer
// the one goroutine writeLoop runs in; everything else belongs to the loop.
type session struct {
	h     *Hub
	id    uint64
	name  string
	admin bool
	conn  Conn
	// key is the Ed25519 key the session logged in with (nil after a
	// password login), and keyB64 its wire form, for welcome and events.
	key    ed25519.PublicKey
	keyB64 string

	// out carries encoded events to the writer. Only the loop pushes, and
	// it pushes one event beyond cfg.queue at most, the last notice.
	out        outQueue
	drained    chan struct{} // poked by the writer after each write and the loop after each request
	inflight   atomic.Int32  // requests passed to the loop and not yet handled
	end        chan struct{} // closed by the loop: flush out, then close conn
	writerDone chan struct{}
	closeOnce  sync.Once

	// acct is shared with the account's other sessions; set by attach
	// before the reader starts, cleared by gone after it stopped.
	acct *account

	// p is what the session needs of the Store: read before it was
	// attached, then owned by the loop. Nil without a Store.
	p *persistState

	// Owned by the loop.
	live         bool // counted in acct.live
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
	s := &session{
		h:          h,
		id:         h.nextSession.Add(1),
		name:       foldName(id.User),
		admin:      id.Admin,
		key:        id.SigningKey,
		conn:       c,
		drained:    make(chan struct{}, 1),
		end:        make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	if len(id.SigningKey) == ed25519.PublicKeySize {
		s.keyB64 = msgsig.EncodeKey(id.SigningKey)
	}
	s.out.init()
	return s
}

// checkSigned judges a signed msg request (PROTOCOL.md §13.16.4) on the
// reader's goroutine: the verification costs tens of microseconds, which
// the loop, fanning out for every session, should not spend. It rebuilds
// what the loop will relay: the text sanitised, the room or recipient
// folded, the kind as the loop will name it. A request the loop refuses
// for another reason (too long, not a member) gets that error instead.
func (s *session) checkSigned(req *Request) error {
	if req == nil || req.Type != TypeMsg || !req.badSigNumber && !msgsig.Signs(req.Sig, req.Ctr, req.Cts) {
		return nil
	}
	if req.badSigNumber {
		return fmt.Errorf("%w: ctr and cts must be unsigned integers", msgsig.ErrBadSignature)
	}
	if len(req.Text) > MaxText {
		return nil // the loop answers too_long; nothing to verify
	}
	f := msgsig.Fields{Kind: req.Kind, Target: foldName(req.Room), From: s.name,
		Counter: req.Ctr, Time: req.Cts, Text: SanitizeText(req.Text)}
	if f.Kind == "" {
		f.Kind = KindMsg
	}
	if req.To != "" && f.Kind == KindMsg {
		f.Kind, f.Target = KindDM, foldName(req.To)
	}
	if req.Sig == "" || req.Ctr == 0 {
		return fmt.Errorf("%w: sig, ctr and cts must all be present", msgsig.ErrBadSignature)
	}
	return msgsig.CheckRequest(s.key, &f, req.Sig)
}

// readLoop passes the client's requests to the loop until ReadMessage
// fails. The flood limit is applied here, before the loop sees a request.
func (s *session) readLoop() error {
	helloSeen := false
	for {
		// Backpressure: a client that sends faster than it reads its own
		// answers waits here (and so, through the transport, in its own
		// writes) instead of overflowing its queue and losing them.
		for s.inflight.Load() > 0 || s.out.len() > s.h.cfg.queue/2 {
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
		// A pong answers the server; the first hello is paid for by the
		// login, which costs far more. Without that exemption the sessions
		// of an account starting together would eat its shared bucket.
		free := req != nil && (req.Type == TypePong || req.Type == TypeHello && !helloSeen)
		if req != nil && req.Type == TypeHello {
			helloSeen = true
		}
		if !free {
			if ok, wait := s.acct.take(time.Now()); !ok {
				derr = &floodError{wait: wait}
			}
		}
		var sigErr error
		if derr == nil {
			sigErr = s.checkSigned(req)
		}
		s.inflight.Add(1)
		select {
		case s.h.in <- inbound{s: s, req: req, err: derr, sigErr: sigErr}:
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
		case <-s.out.wake:
			for {
				batch = s.out.take(batch[:0], maxBatch)
				if len(batch) == 0 {
					break
				}
				err := s.conn.WriteMessages(batch)
				clear(batch)
				if err != nil {
					s.closeConn() // so that the reader stops too
					return
				}
				s.poke()
			}
		case <-s.end:
			for {
				batch = s.out.take(batch[:0], maxBatch)
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

// outQueue is a session's queue of encoded events, with one producer (the
// loop) and one consumer (the writer). It is a list of small chunks linked
// as they fill, so that its memory follows what is pending: an idle
// session holds one chunk of queueChunkLen slots, where a channel of
// cfg.queue slots (12 KiB at 512) would be held for the whole life of
// every session. Producer and consumer share no lock: items are published
// by the chunk's atomic count, chunks by the atomic next pointer, and a
// drained chunk goes back to the producer as the spare for the next one.
type outQueue struct {
	wake chan struct{} // a token: something was pushed

	tail *queueChunk // the producer's
	head *queueChunk // the consumer's
	read int         // the consumer's index in head

	spare         atomic.Pointer[queueChunk] // a drained chunk for the producer to reuse
	pushed, taken atomic.Int64
}

const queueChunkLen = 16

type queueChunk struct {
	items [queueChunkLen][]byte
	n     atomic.Int32 // items published
	next  atomic.Pointer[queueChunk]
}

func (q *outQueue) init() {
	c := new(queueChunk)
	q.head, q.tail = c, c
	q.wake = make(chan struct{}, 1)
}

// push appends b and wakes the consumer. Only the loop calls it.
func (q *outQueue) push(b []byte) {
	t := q.tail
	n := t.n.Load()
	if n == queueChunkLen {
		c := q.spare.Swap(nil)
		if c == nil {
			c = new(queueChunk)
		}
		t.next.Store(c)
		q.tail, t, n = c, c, 0
	}
	t.items[n] = b
	t.n.Store(n + 1)
	q.pushed.Add(1)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// len reports how many events are pushed and not yet taken.
func (q *outQueue) len() int { return int(q.pushed.Load() - q.taken.Load()) }

// take appends pending events, oldest first, to batch until it holds max,
// without waiting. Only the writer calls it.
func (q *outQueue) take(batch [][]byte, max int) [][]byte {
	start := len(batch)
	for len(batch) < max {
		h := q.head
		if q.read == queueChunkLen {
			next := h.next.Load()
			if next == nil {
				break
			}
			q.head, q.read = next, 0
			// The producer has moved on for good: recycle h.
			h.n.Store(0)
			h.next.Store(nil)
			q.spare.Store(h)
			continue
		}
		if int32(q.read) >= h.n.Load() {
			break
		}
		batch = append(batch, h.items[q.read])
		h.items[q.read] = nil
		q.read++
	}
	q.taken.Add(int64(len(batch) - start))
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

// account is what the sessions of one account share while any of them is
// attached. The loop owns the counts; the bucket is taken by the sessions'
// readers, under mu. It is forgotten when the last session is gone, so a
// new login starts with a full bucket, but logins cost a handshake and a
// password hash each, and are limited on their own.
type account struct {
	live int // attached sessions not yet ending: what MaxSessionsPerUser bounds
	refs int // attached sessions, ending or not

	mu     sync.Mutex
	bucket bucket
}

func (a *account) take(now time.Time) (bool, time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bucket.take(now)
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
