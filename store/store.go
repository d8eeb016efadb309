package store

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Message kinds that a store keeps. Room events that are not kept (join,
// part, quit, notice) never reach it.
const (
	KindMsg   = "msg"   // a room message
	KindMe    = "me"    // a room action
	KindTopic = "topic" // a topic change; Text is the new topic
	KindDM    = "dm"    // a direct message; To is the recipient
)

// Message is one stored event.
type Message struct {
	ID   uint64    // the server's message id (mid): unique, increasing
	Time time.Time // when the server created it; kept to the millisecond
	Kind string    // KindMsg, KindMe, KindTopic or KindDM
	Room string    // the room; empty for a direct message
	From string    // the sender
	To   string    // a direct message's recipient; empty in a room
	Text string

	// Queued is set by the caller on a direct message whose recipient had
	// no session: the store then keeps it on the recipient's queue until
	// [Store.Delivered]. Messages read back keep the flag, so a client can
	// show that it was delivered late.
	Queued bool

	// Key, Sig, Ctr and Cts are a signed message's signature fields as
	// the sender's client sent them (PROTOCOL.md §13.16.3): the base64 key
	// and signature, the counter and the sender's clock. The store keeps
	// them unchanged, for recipients to verify when the message is
	// replayed; all empty and zero for an unsigned message.
	Key, Sig string
	Ctr, Cts uint64
}

// conversation names the history a message belongs to: its room, or, for a
// direct message, the pair of accounts in name order. Account names cannot
// contain a space or start with '#', so the two never collide.
func (m *Message) conversation() string {
	if m.Kind == KindDM {
		return dmConversation(m.From, m.To)
	}
	return m.Room
}

func dmConversation(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return "@" + a + " " + b
}

// Restriction is a ban or a mute.
type Restriction struct {
	User   string
	Until  time.Time // zero: until lifted
	By     string
	Reason string
}

// Active reports whether r still holds at now.
func (r Restriction) Active(now time.Time) bool { return r.Until.IsZero() || now.Before(r.Until) }

// Room is an entry of the room list.
type Room struct {
	Name  string
	Topic string
}

// State is what a server loads once at start.
type State struct {
	// LastID is the highest message id the store has seen, including ids of
	// messages since deleted by retention and ids given to SetLastID.
	// Number new messages from LastID+1.
	LastID uint64
	MOTD   string
	Rooms  []Room        // sorted by name
	Bans   []Restriction // sorted by user; expired ones are left out
	Mutes  []Restriction // sorted by user; expired ones are left out
}

// Options configure a Store. The zero value keeps everything forever.
type Options struct {
	// Logger receives failed writes (at Error) and retention runs. Nil: discard.
	Logger *slog.Logger

	// Retention deletes messages older than this. Zero: keep them.
	// Direct messages still waiting on an offline account's queue are kept.
	// Ids follow time, so age is judged in id order: after the clock was
	// set back, a message goes no earlier than the ones before it.
	Retention time.Duration
	// MaxPerRoom keeps only the newest MaxPerRoom messages of each room.
	// Zero: no limit. Direct messages are not counted.
	MaxPerRoom int
	// PruneEvery is how often the background job applies Retention and
	// MaxPerRoom and drops expired bans and mutes: one minute by default.
	PruneEvery time.Duration

	// Backlog is how many changes may wait for the writer before further
	// ones are refused with ErrBacklog: 10000 by default. The writer
	// commits thousands a second; a backlog that fills means the disk has
	// stalled, and refusing keeps memory bounded and the caller responsive.
	Backlog int

	// maxPages caps the database (PRAGMA max_page_count), so that tests can
	// run into a full disk without filling one.
	maxPages int
}

var (
	// ErrClosed is returned for any use of a Store after Close.
	ErrClosed = errors.New("store: closed")
	// ErrBacklog refuses a change because too many wait for the disk.
	ErrBacklog = errors.New("store: too many writes waiting for the disk")
	// ErrDiskFull is wrapped by write errors caused by a full disk (or a
	// database that reached its size limit).
	ErrDiskFull = errors.New("store: disk full")
	// ErrIDOrder refuses a message whose id is not above every id stored
	// before; the store keeps ids unique and increasing across restarts.
	ErrIDOrder = errors.New("store: message id not above the last one")
)

// backend is where the changes go: SQLite or memory. The writer goroutine is
// the only caller of apply; the read methods may run on any goroutine.
type backend interface {
	// apply commits the changes in one transaction, or, when that fails,
	// each on its own, setting op.err for each one that failed.
	apply(ops []*op)
	load(now time.Time) (State, error)
	history(conv string, before uint64, n int) ([]Message, error)
	pending(user string, n int) ([]Message, error)
	search(query []string, rooms []string, before uint64, n int) ([]Message, error)
	userRooms(user string) ([]string, error)
	lastRead(user string) (map[string]uint64, error)
	countAfter(room string, id uint64) (int, error)
	close() error
}

type opKind uint8

const (
	opAppend opKind = iota
	opMOTD
	opTopic
	opAddRoom
	opRemoveRoom
	opBan
	opUnban
	opMute
	opUnmute
	opJoin
	opPart
	opLastRead
	opDelivered
	opDeleteUser
	opLastID
	opPrune
	opSync // does nothing; its callback marks a point in the queue
)

// op is one queued change.
type op struct {
	kind opKind
	msg  Message
	user string
	room string
	text string
	id   uint64
	r    Restriction
	now  time.Time // opPrune

	done    func(error)
	err     error
	deleted int // opPrune: messages deleted
}

// Store is a durable (or in-memory) chat store. Its methods are safe for
// concurrent use. Changes return at once and are committed in the order
// they were made; reads see every change whose commit has completed.
type Store struct {
	b    backend
	opts Options
	log  *slog.Logger

	mu     sync.RWMutex // guards closed against the send on queue
	closed bool
	queue  chan *op

	writerDone chan struct{}
	pruneStop  chan struct{}
	pruneDone  chan struct{}
	closeOnce  sync.Once
	closeErr   error

	// Owned by the writer goroutine.
	lastID uint64

	committedID atomic.Uint64 // lastID, for readers
	stats       struct{ batches, committed, failed atomic.Uint64 }
	// writeErr is the error of the last batch that reached the disk, nil
	// when it committed: what Healthy reports.
	writeErr atomic.Pointer[error]
}

// Healthy reports whether the store can write: nil once the last batch
// that reached the disk committed, else that batch's error (wrapping
// ErrDiskFull for a full disk). A refused id order is the caller's mistake
// and does not count. It is safe from any goroutine.
func (s *Store) Healthy() error {
	if p := s.writeErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Stats are counters for metrics and logs.
type Stats struct {
	Batches   uint64 // transactions the writer committed or tried
	Committed uint64 // changes committed
	Failed    uint64 // changes that failed (each also logged)
	Backlog   int    // changes waiting for the writer now
}

// Stats returns the writer's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Batches:   s.stats.batches.Load(),
		Committed: s.stats.committed.Load(),
		Failed:    s.stats.failed.Load(),
		Backlog:   len(s.queue),
	}
}

func newStore(b backend, opts *Options, lastID uint64) *Store {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PruneEvery <= 0 {
		o.PruneEvery = time.Minute
	}
	if o.Backlog <= 0 {
		o.Backlog = 10000
	}
	s := &Store{
		b:          b,
		opts:       o,
		log:        o.Logger,
		queue:      make(chan *op, o.Backlog),
		writerDone: make(chan struct{}),
		pruneStop:  make(chan struct{}),
		pruneDone:  make(chan struct{}),
		lastID:     lastID,
	}
	s.committedID.Store(lastID)
	go s.writer()
	if o.Retention > 0 || o.MaxPerRoom > 0 {
		go s.pruner()
	} else {
		close(s.pruneDone)
	}
	return s
}

// maxBatch bounds one transaction, so that a long backlog is committed in
// steps and the first callbacks do not wait for the last message.
const maxBatch = 1024

// writer is the one goroutine that writes. It commits what has queued up
// while the previous commit ran, so a busy server pays for one fsync per
// batch instead of one per message, and an idle one adds no delay.
func (s *Store) writer() {
	defer close(s.writerDone)
	batch := make([]*op, 0, maxBatch)
	for first := range s.queue {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxBatch {
			select {
			case o, ok := <-s.queue:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		s.commit(batch)
		clear(batch)
	}
}

func (s *Store) commit(batch []*op) {
	ready := make([]*op, 0, len(batch))
	last := s.lastID
	for _, o := range batch {
		switch o.kind {
		case opAppend:
			if o.msg.ID <= last {
				o.err = fmt.Errorf("%w: %d after %d", ErrIDOrder, o.msg.ID, last)
				continue
			}
			last = o.msg.ID
		case opLastID:
			if o.id <= last {
				continue // nothing to raise
			}
			last = o.id
		}
		ready = append(ready, o)
	}
	if len(ready) > 0 {
		s.b.apply(ready)
		var failure error
		for _, o := range ready {
			if o.err != nil {
				failure = o.err
				break
			}
		}
		if failure != nil {
			s.writeErr.Store(&failure)
		} else {
			s.writeErr.Store(nil)
		}
	}
	for _, o := range batch {
		if o.err == nil && (o.kind == opAppend || o.kind == opLastID) {
			s.lastID = max(s.lastID, o.msg.ID, o.id)
		}
	}
	s.committedID.Store(s.lastID)
	failed := 0
	for _, o := range batch {
		if o.err != nil {
			failed++
			if failed == 1 {
				s.log.Error("store: write failed", "change", o.kind.String(), "err", o.err)
			}
		}
	}
	// Counted before anyone is told, so that whoever a callback wakes sees
	// Stats that include its own change.
	s.stats.batches.Add(1)
	s.stats.failed.Add(uint64(failed))
	s.stats.committed.Add(uint64(len(batch) - failed))
	for _, o := range batch {
		if o.done != nil {
			o.done(o.err)
		}
	}
	if failed > 1 {
		s.log.Error("store: writes failed in one batch", "failed", failed, "batch", len(batch))
	}
}

func (k opKind) String() string {
	names := [...]string{"append", "motd", "topic", "add room", "remove room", "ban", "unban",
		"mute", "unmute", "join", "part", "last read", "delivered", "delete user", "last id", "prune", "sync"}
	if int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("op(%d)", k)
}

// enqueue hands o to the writer without waiting.
func (s *Store) enqueue(o *op) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.queue <- o:
		return nil
	default:
		return ErrBacklog
	}
}

// Append queues m and returns at once. On ErrClosed or ErrBacklog m is not
// stored and done is not called. Otherwise done (if not nil) is called
// exactly once, on the writer goroutine, when the transaction holding m has
// committed (nil: m is durable) or failed (an error, wrapping ErrDiskFull
// when the disk is full, or ErrIDOrder). Callbacks come in Append order
// and must not block: the next batch waits for them. A callback must not
// call Sync, Prune or Close, which wait for the writer it runs on.
//
// m.ID must be above every id appended before, and above State.LastID.
func (s *Store) Append(m Message, done func(error)) error {
	m.Time = m.Time.UTC().Truncate(time.Millisecond)
	return s.enqueue(&op{kind: opAppend, msg: m, done: done})
}

// The changes below are queued like Append and return ErrClosed or
// ErrBacklog when refused. A change that fails at commit is logged; it is
// state the server also holds in memory, so the server goes on.

// SetMOTD sets the message of the day.
func (s *Store) SetMOTD(text string) error { return s.enqueue(&op{kind: opMOTD, text: text}) }

// SetTopic sets a room's topic ("" clears it), adding the room to the
// room list if needed. Store the topic event itself with Append.
func (s *Store) SetTopic(room, topic string) error {
	return s.enqueue(&op{kind: opTopic, room: room, text: topic})
}

// AddRoom adds a room to the room list.
func (s *Store) AddRoom(room string) error { return s.enqueue(&op{kind: opAddRoom, room: room}) }

// RemoveRoom drops a room (and its topic) from the room list. Its history
// stays until retention removes it.
func (s *Store) RemoveRoom(room string) error {
	return s.enqueue(&op{kind: opRemoveRoom, room: room})
}

// Ban records a ban, replacing any earlier one of r.User.
func (s *Store) Ban(r Restriction) error { return s.enqueue(&op{kind: opBan, r: r}) }

// Unban lifts a ban.
func (s *Store) Unban(user string) error { return s.enqueue(&op{kind: opUnban, user: user}) }

// Mute records a mute, replacing any earlier one of r.User.
func (s *Store) Mute(r Restriction) error { return s.enqueue(&op{kind: opMute, r: r}) }

// Unmute lifts a mute.
func (s *Store) Unmute(user string) error { return s.enqueue(&op{kind: opUnmute, user: user}) }

// Join records that user is in room, so that the next login rejoins it.
func (s *Store) Join(user, room string) error {
	return s.enqueue(&op{kind: opJoin, user: user, room: room})
}

// Part records that user left room. The last-read position is kept, so a
// user who comes back is told what was missed.
func (s *Store) Part(user, room string) error {
	return s.enqueue(&op{kind: opPart, user: user, room: room})
}

// SetLastRead records that user has seen room up to message id. A lower id
// than the one stored is ignored.
func (s *Store) SetLastRead(user, room string, id uint64) error {
	return s.enqueue(&op{kind: opLastRead, user: user, room: room, id: id})
}

// Delivered takes the messages of user's queue with ids up to through off
// the queue, after they were handed to a session. The messages stay in the
// conversation's history, still marked Queued.
func (s *Store) Delivered(user string, through uint64) error {
	return s.enqueue(&op{kind: opDelivered, user: user, id: through})
}

// DeleteUser forgets an account: every direct message it sent or received
// (history and queues, on both sides of each conversation), its rooms and
// last-read positions. Its room messages stay, as the room saw them; bans
// and mutes stay, so that a new account of the same name inherits them.
func (s *Store) DeleteUser(user string) error {
	return s.enqueue(&op{kind: opDeleteUser, user: user})
}

// SetLastID raises the stored last id to id, for ids the server gave to
// events it does not store (joins, notices), so that they are not reused
// after a restart. Call it now and then and at shutdown.
func (s *Store) SetLastID(id uint64) error { return s.enqueue(&op{kind: opLastID, id: id}) }

// Sync waits until every change queued before it has been committed (or
// has failed). It returns ErrClosed or ErrBacklog if refused.
func (s *Store) Sync() error {
	ch := make(chan struct{})
	if err := s.enqueue(&op{kind: opSync, done: func(error) { close(ch) }}); err != nil {
		return err
	}
	<-ch
	return nil
}

// Prune applies the retention options as of now: it deletes messages older
// than Retention and beyond MaxPerRoom per room, at most pruneChunk at a
// time, and expired bans and mutes. It returns how many messages it deleted.
// The background job calls it every PruneEvery; it waits for the writer.
func (s *Store) Prune(now time.Time) (int, error) {
	ch := make(chan error, 1)
	o := &op{kind: opPrune, now: now, done: func(err error) { ch <- err }}
	if err := s.enqueue(o); err != nil {
		return 0, err
	}
	err := <-ch
	return o.deleted, err
}

// pruneChunk bounds the messages one Prune deletes, so that a first run
// over a long history does not hold the writer (and every Append behind
// it) for long: BenchmarkPrune1M measures about 40 ms a chunk (5000 took
// 165 ms).
const pruneChunk = 1000

func (s *Store) pruner() {
	defer close(s.pruneDone)
	t := time.NewTicker(s.opts.PruneEvery)
	defer t.Stop()
	for {
		select {
		case <-s.pruneStop:
			return
		case <-t.C:
		}
		total := 0
		for {
			n, err := s.Prune(time.Now())
			if err != nil {
				if !errors.Is(err, ErrClosed) {
					s.log.Error("store: retention", "err", err)
				}
				break
			}
			total += n
			if n < pruneChunk {
				break
			}
			select {
			case <-s.pruneStop:
				return
			default:
			}
		}
		if total > 0 {
			s.log.Info("store: retention deleted messages", "count", total)
		}
	}
}

// Close commits what is queued, stops the writer and the retention job
// and closes the database. Later calls return the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.pruneStop)
		<-s.pruneDone
		s.mu.Lock()
		s.closed = true
		close(s.queue)
		s.mu.Unlock()
		<-s.writerDone
		s.closeErr = s.b.close()
	})
	return s.closeErr
}

// Load reads the state a server needs at start.
func (s *Store) Load() (State, error) {
	st, err := s.b.load(time.Now())
	if err != nil {
		return State{}, err
	}
	st.LastID = max(st.LastID, s.LastID())
	return st, nil
}

// LastID returns the highest message id committed, or found at open.
func (s *Store) LastID() uint64 { return s.committedID.Load() }

// History returns up to n messages of room with ids below before (0: the
// newest), oldest first.
func (s *Store) History(room string, before uint64, n int) ([]Message, error) {
	if n <= 0 {
		return nil, nil
	}
	return s.b.history(room, beforeOrMax(before), n)
}

// DMHistory returns up to n direct messages between a and b with ids below
// before (0: the newest), oldest first.
func (s *Store) DMHistory(a, b string, before uint64, n int) ([]Message, error) {
	if n <= 0 {
		return nil, nil
	}
	return s.b.history(dmConversation(a, b), beforeOrMax(before), n)
}

func beforeOrMax(before uint64) uint64 {
	if before == 0 || before > maxID {
		return maxID
	}
	return before
}

// maxID is above every message id: ids are below 2^53 (PROTOCOL.md §13.7)
// and SQLite integers are signed 64-bit.
const maxID = 1<<63 - 1

// Pending returns the oldest n direct messages queued for user, oldest
// first. They stay queued until Delivered, so a login delivers a long
// queue in pages: Pending, send, Delivered(last id), Pending again.
func (s *Store) Pending(user string, n int) ([]Message, error) {
	if n <= 0 {
		return nil, nil
	}
	return s.b.pending(user, n)
}

// Search returns up to n room messages of the given rooms that contain
// every word of text (whole words, ignoring case and accents), newest
// first, with ids below before (0: the newest). The store does not decide
// who may read a room: pass only rooms the user may read. Empty text or no
// rooms find nothing.
func (s *Store) Search(text string, rooms []string, before uint64, n int) ([]Message, error) {
	words := searchWords(text)
	if len(words) == 0 || len(rooms) == 0 || n <= 0 {
		return nil, nil
	}
	return s.b.search(words, rooms, beforeOrMax(before), n)
}

// searchWords splits text into the words the full-text index knows: runs
// of letters and digits, lower-cased. The in-memory store matches the
// same way, so both agree on ASCII text.
func searchWords(text string) []string {
	f := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !isWordRune(r) })
	if len(f) > 16 {
		f = f[:16] // a query, not a document
	}
	return f
}

// Rooms returns the rooms user is in, sorted, for the next login.
func (s *Store) Rooms(user string) ([]string, error) { return s.b.userRooms(user) }

// LastRead returns user's last-read message id per room. A room the user
// has never been in has no entry.
func (s *Store) LastRead(user string) (map[string]uint64, error) { return s.b.lastRead(user) }

// CountAfter returns how many messages room has with ids above id: the
// "N new messages" of a user whose last-read position is id.
func (s *Store) CountAfter(room string, id uint64) (int, error) { return s.b.countAfter(room, id) }
