package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"time"
)

// CheckQueue schedules password checks, the one thing an unauthenticated
// client can make the server spend much CPU and memory on (an Argon2id
// hash at the defaults takes about 110 ms of a core and 64 MiB):
//
//   - at most Concurrency checks run at once, by default one fewer than
//     the cores, so logged-in sessions keep a core however hard logins
//     are pushed, and hashing memory stays bounded;
//   - a source (address block, as for the [PenaltyBox]) has at most one
//     check running, and at most PerSource waiting behind it: a check
//     beyond that is refused with [ErrSourceBusy]. With PerSource 1, a
//     second check waits for the running one, but a third is refused, so a
//     source's checks pile up only while the queue is idle enough to run
//     them, never while it is congested;
//   - a free slot goes to the waiting source with the lowest rank: its
//     penalty left, plus its checks in flight, plus its record (see
//     [PenaltyBox.Refused] and the penalty box's rank); among equals, to
//     the one served least recently. A source that behaves is served
//     before one that floods, a new source does not queue behind sources
//     that failed before (even once their penalty has drained), and busy
//     sources take turns;
//   - checks from sources with a record (penalties earned and connections
//     refused at accept that add up to the penalty box's Min, within its
//     memory) take at most RecordShare of one slot's time: one at a time,
//     and after each the next waits until the slot has rested that check's
//     time multiplied by 1/RecordShare - 1. A storm from many addresses,
//     each of which waits out its penalty and tries again, keeps its
//     guesses coming faster than a slot hashes them; without the share it
//     would keep a core hashing for as long as it lasts, which on a small
//     host is a core the sessions need. Sources without such a record are
//     not held back, and among sources with one the lowest rank still goes
//     first;
//   - exempt sources have one slot of their own beyond Concurrency, so an
//     exempt check never waits for a check from elsewhere to finish, and
//     they are served before all others for the shared slots, each check
//     on its own, without the one-per-source rule. At most Concurrency+1
//     checks run at once.
//
// A check waits at most until its context ends; the server derives that
// context from the connection's login grace time.
type CheckQueue struct {
	// Concurrency bounds the checks running at once. Zero means
	// max(1, GOMAXPROCS-1).
	Concurrency int
	// PerSource caps the checks from one source that may wait while
	// another of its checks runs or waits; 0 means no cap.
	PerSource int
	Exempt    *PrefixList
	// RecordShare is the fraction of one slot's time that checks from
	// sources with a record may take. Zero means DefaultRecordShare; 1 or
	// more, or a nil record function, no bound.
	RecordShare float64

	// score, if set, ranks sources: lower is served first. The server
	// sets it to its PenaltyBox's.
	score func(netip.Prefix) time.Duration
	// record, if set, reports whether a source has a record. The server
	// sets it to its PenaltyBox's.
	record func(netip.Prefix) bool

	mu          sync.Mutex
	running     int            // checks in the shared slots
	reserveBusy bool           // the exempt sources' own slot is in use
	exempt      []*checkTicket // exempt checks waiting, in arrival order
	sources     map[netip.Prefix]*checkSource
	lastServed  map[netip.Prefix]uint64 // source -> turn it was last served
	turn        uint64
	seq         uint64
	// The record share: a check from a source with a record runs, none
	// may start before recordAfter, and a dispatch is due then.
	recordBusy  bool
	recordAfter time.Time
	recordWake  bool
}

// DefaultRecordShare lets checks from sources with a record take a tenth
// of one slot: with Argon2id at the defaults, about one guess a second
// from a whole storm, and a tenth of a core.
const DefaultRecordShare = 0.1

// ErrSourceBusy is returned by [CheckQueue.Acquire] when a check from the
// same source is already waiting for a slot.
var ErrSourceBusy = errors.New("server: a password check from this source is already waiting")

// maxRemembered bounds CheckQueue.lastServed. Forgetting a source only
// makes it look new, which moves it forward by at most one turn.
const maxRemembered = 4096

type checkSource struct {
	busy    bool           // a check of this source is running
	waiting []*checkTicket // in arrival order
}

type checkTicket struct {
	key     netip.Prefix
	exempt  bool
	seq     uint64 // arrival order
	granted bool
	reserve bool          // runs in the exempt sources' own slot
	record  bool          // runs as the one check from a source with a record
	started time.Time     // when granted, for a check with a record
	ready   chan struct{} // closed when granted
}

func (q *CheckQueue) limit() int {
	if q.Concurrency > 0 {
		return q.Concurrency
	}
	return max(1, runtime.GOMAXPROCS(0)-1)
}

// Acquire waits until a check from src may run, or until ctx ends. On
// success the caller must call release once the check is done.
func (q *CheckQueue) Acquire(ctx context.Context, src netip.Addr) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("server: password check not started: %w", err)
	}
	t := &checkTicket{key: sourceBlock(src), exempt: q.Exempt.Contains(src), ready: make(chan struct{})}
	q.mu.Lock()
	q.seq++
	t.seq = q.seq
	if t.exempt {
		q.exempt = append(q.exempt, t)
	} else {
		if q.sources == nil {
			q.sources = make(map[netip.Prefix]*checkSource)
		}
		s := q.sources[t.key]
		if s == nil {
			s = &checkSource{}
			q.sources[t.key] = s
		}
		if q.PerSource > 0 && len(s.waiting) >= q.PerSource {
			q.mu.Unlock()
			return nil, ErrSourceBusy
		}
		s.waiting = append(s.waiting, t)
	}
	q.dispatchLocked()
	q.mu.Unlock()

	var once sync.Once
	release = func() { once.Do(func() { q.done(t) }) }
	select {
	case <-t.ready:
		return release, nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	if t.granted {
		// Granted as ctx ended: give the slot back at once.
		q.mu.Unlock()
		release()
	} else {
		q.removeLocked(t)
		q.mu.Unlock()
	}
	return nil, fmt.Errorf("server: gave up waiting for a password check: %w", context.Cause(ctx))
}

// dispatchLocked grants free slots to waiting checks.
func (q *CheckQueue) dispatchLocked() {
	// An exempt check takes the exempt sources' own slot if it is free,
	// and waits for a shared one otherwise. On the two-core host this
	// queue was tuned for, one shared slot plus this one fill credstore's
	// pool of one hash per core, and no more.
	if len(q.exempt) > 0 && !q.reserveBusy {
		next := q.exempt[0]
		q.exempt = q.exempt[1:]
		q.reserveBusy, next.reserve, next.granted = true, true, true
		close(next.ready)
	}
	for q.running < q.limit() {
		var next *checkTicket
		if len(q.exempt) > 0 {
			next = q.exempt[0]
			q.exempt = q.exempt[1:]
		} else {
			var best *checkSource
			var bestScore time.Duration
			var bestTurn uint64
			var bestRecord, held bool
			recordMayStart := q.recordMayStart()
			for key, s := range q.sources {
				if s.busy || len(s.waiting) == 0 {
					continue
				}
				record := q.hasRecord(key)
				if record && !recordMayStart {
					held = true
					continue
				}
				var score time.Duration
				if q.score != nil {
					score = q.score(key)
				}
				turn := q.lastServed[key]
				if best == nil || score < bestScore ||
					score == bestScore && (turn < bestTurn || turn == bestTurn && s.waiting[0].seq < best.waiting[0].seq) {
					best, bestScore, bestTurn, bestRecord = s, score, turn, record
				}
			}
			if best == nil {
				if held && !q.recordBusy {
					q.wakeAtRecordAfter()
				}
				return
			}
			next = best.waiting[0]
			best.waiting = best.waiting[1:]
			best.busy = true
			q.remember(next.key)
			if bestRecord {
				q.recordBusy, next.record, next.started = true, true, time.Now()
			}
		}
		q.running++
		next.granted = true
		close(next.ready)
	}
}

// hasRecord reports whether checks from key count against the record
// share.
func (q *CheckQueue) hasRecord(key netip.Prefix) bool {
	return q.record != nil && q.recordShare() < 1 && q.record(key)
}

func (q *CheckQueue) recordShare() float64 {
	if q.RecordShare > 0 {
		return q.RecordShare
	}
	return DefaultRecordShare
}

// recordMayStart reports whether a check from a source with a record may
// start now.
func (q *CheckQueue) recordMayStart() bool {
	return !q.recordBusy && (q.recordAfter.IsZero() || !time.Now().Before(q.recordAfter))
}

// wakeAtRecordAfter dispatches again when checks from sources with a
// record may start, unless that is already arranged.
func (q *CheckQueue) wakeAtRecordAfter() {
	if q.recordWake {
		return
	}
	q.recordWake = true
	time.AfterFunc(time.Until(q.recordAfter), func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.recordWake = false
		q.dispatchLocked()
	})
}

// remember notes that key is served now.
func (q *CheckQueue) remember(key netip.Prefix) {
	if q.lastServed == nil {
		q.lastServed = make(map[netip.Prefix]uint64)
	}
	q.turn++
	q.lastServed[key] = q.turn
	if len(q.lastServed) > maxRemembered {
		for k, turn := range q.lastServed {
			if turn+maxRemembered/2 < q.turn {
				delete(q.lastServed, k)
			}
		}
	}
}

// done ends the running check t and hands its slot on.
func (q *CheckQueue) done(t *checkTicket) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t.reserve {
		q.reserveBusy = false
	} else {
		q.running--
	}
	if t.record {
		ran := time.Since(t.started)
		q.recordBusy = false
		q.recordAfter = time.Now().Add(time.Duration(float64(ran) * (1/q.recordShare() - 1)))
	}
	if !t.exempt {
		if s := q.sources[t.key]; s != nil {
			s.busy = false
			if len(s.waiting) == 0 {
				delete(q.sources, t.key)
			}
		}
	}
	q.dispatchLocked()
}

// removeLocked takes a check that was never granted out of the queue.
func (q *CheckQueue) removeLocked(t *checkTicket) {
	if t.exempt {
		q.exempt = removeTicket(q.exempt, t)
		return
	}
	s := q.sources[t.key]
	if s == nil {
		return
	}
	s.waiting = removeTicket(s.waiting, t)
	if !s.busy && len(s.waiting) == 0 {
		delete(q.sources, t.key)
	}
}

func removeTicket(ts []*checkTicket, t *checkTicket) []*checkTicket {
	for i, x := range ts {
		if x == t {
			return append(ts[:i], ts[i+1:]...)
		}
	}
	return ts
}
