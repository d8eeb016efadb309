package chat

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is one logged-in session's message channel. The server glue adapts
// the secure channel to it; tests use in-memory fakes. Each message is one
// UTF-8 JSON object (one APP record).
type Conn interface {
	// ReadMessage returns the next message from the client in a slice the
	// caller owns. It returns io.EOF when the client ended the session
	// cleanly and another error when the session broke or was closed.
	ReadMessage() ([]byte, error)

	// WriteMessages writes msgs in order, in one write to the transport
	// when it can. The hub never calls it concurrently with itself. The
	// slices are shared with other sessions: it must neither modify nor
	// keep them.
	WriteMessages(msgs [][]byte) error

	// Close ends the session (on the secure channel: a CLOSE record, then
	// the end of the stream). It may be called from another goroutine while
	// ReadMessage or WriteMessages is blocked, and must make both return
	// promptly even when the peer has stopped reading, for example by
	// setting a short write deadline first. Serve calls it exactly once.
	Close() error
}

// Identity is who a session belongs to, as the server glue authenticated it.
type Identity struct {
	User string // account name, [a-z0-9_.-]{1,32}
	// Admin says the account could moderate at login. It is used only when
	// Config.IsAdmin is nil; otherwise the hub asks IsAdmin each time.
	Admin bool
	// SigningKey is the Ed25519 key the session logged in with, nil after
	// a password login. Messages the session signs must verify with it
	// (PROTOCOL.md §13.16.4).
	SigningKey ed25519.PublicKey
}

var (
	// ErrClosed is returned by Serve when the hub is shut down or closed.
	ErrClosed = errors.New("chat: hub closed")
	// ErrBanned is returned by Serve for a user who is banned; the client
	// got an error event with code "banned" first.
	ErrBanned = errors.New("chat: user is banned")
	// ErrDisconnected is wrapped by the error Serve returns when the hub
	// ended the session: kick, ban, Disconnect, slow consumer, ping timeout.
	ErrDisconnected = errors.New("chat: disconnected by the server")
	// ErrSessionLimit is returned by Serve for a session refused because
	// its account had Config.MaxSessionsPerUser sessions already; the
	// client got an error event with code "session_limit" first.
	ErrSessionLimit = errors.New("chat: too many sessions for the account")
)

// Config configures a Hub. The zero value is usable; zero fields take the
// defaults named in their comments.
type Config struct {
	// Logger receives session and moderation events. Message bodies are
	// logged only at debug level. Nil discards.
	Logger *slog.Logger

	// MOTD is shown at login, multi-line; SetMOTD and /motd change it.
	MOTD string

	// DefaultRoom is joined by a user's first session at login when its
	// hello names no valid room: "#general".
	DefaultRoom string

	// HistorySize is the ring of messages kept per room: 500. Negative: none.
	HistorySize int
	// HistoryReplay is how many of them a joining session gets: 50.
	// Negative: none.
	HistoryReplay int

	// HistoryRoomBytes bounds the memory one room's history may take:
	// 1 MiB. HistoryBytes bounds all rooms' history together: 64 MiB. Each
	// kept event is charged its encoded size plus the hub's bookkeeping
	// (about 500 bytes). Past either budget the oldest events are dropped:
	// the room's own, or the server's oldest anywhere. Negative: no budget.
	// (Without them 1000 rooms of 500 messages of 4 KiB could hold 2 GiB.)
	HistoryRoomBytes int
	HistoryBytes     int

	// FloodBurst and FloodRate shape the token bucket that all sessions of
	// one account share: FloodBurst requests at once (5), refilled at
	// FloodRate per second (2). This is ergo's fakelag default ("burst 5,
	// then 2 messages per 1 s window") as a bucket; refilling from empty
	// takes 2.5 s, close to fakelag's 2 s cooldown. Sharing it means more
	// sessions do not buy an account more requests. A negative FloodRate
	// turns the limit off.
	FloodBurst int
	FloodRate  float64

	// MaxSessionsPerUser bounds the sessions one account may have at once:
	// 10, as many IRC servers bound clients per user. One more is refused
	// with error "session_limit". Negative: no bound.
	MaxSessionsPerUser int

	// IsAdmin reports whether user may use the moderation commands now.
	// The hub asks it at every admin command (and for welcome, whois and
	// help), so a role taken away applies to sessions already logged in.
	// It runs on the hub's loop: it must be quick, must not block and must
	// not call the Hub. Nil: Identity.Admin, as given at login.
	IsAdmin func(user string) bool

	// SendQueue is how many events may wait for a session's writer: 512.
	// A session's own requests stop being read while its queue is more
	// than half full, so replies to a fast sender are never dropped; the
	// other half absorbs bursts from the rooms it is in.
	SendQueue int
	// SlowConsumerTimeout is how long a session's queue may stay full before
	// the session is disconnected: 10 s. While it is full, events for it are
	// dropped and counted; if it recovers it gets a notice saying how many.
	SlowConsumerTimeout time.Duration
	// FlushTimeout bounds how long an ending session's writer may take to
	// send its last events before its Conn is closed anyway: 2 s.
	FlushTimeout time.Duration

	// PingInterval is how long a session may be silent before the server
	// pings it: 30 s. A session silent for PingInterval+PingTimeout (30 s)
	// is disconnected.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// HelloTimeout is how long a new session may take to send hello before
	// it is disconnected: 30 s. It is separate from the keepalive, so that
	// a long ping interval does not let idle unnamed sessions linger.
	HelloTimeout time.Duration

	// MaxRooms bounds the number of rooms: 1000.
	MaxRooms int

	// Store keeps messages, direct messages for offline accounts, bans,
	// mutes, topics, the MOTD, the room list, memberships and last-read
	// positions across restarts (PROTOCOL.md §13.15). Nil: the hub keeps
	// them in memory only, as long as it runs. NewHub loads from it; a
	// message is acknowledged only once the store has committed it.
	Store Store

	// UserExists reports whether an account of that name exists, so that
	// a direct message to it can wait while it is offline (with a Store).
	// It runs on the hub's loop and must be quick. Nil: a direct message
	// to someone offline is refused.
	UserExists func(user string) bool

	// Relay joins the hub to the other servers of a cluster: messages go
	// through its log, and bans, mutes, the MOTD and presence are shared.
	// Nil: this server is the whole chat.
	Relay Relay
}

// maxRoomsPerUser bounds the rooms one user can be in.
const maxRoomsPerUser = 50

// maxBatch bounds the events coalesced into one WriteMessages call.
const maxBatch = 64

type config struct {
	defaultRoom      string
	historySize      int
	historyReplay    int
	historyRoomBytes int // 0: no budget
	historyBytes     int // 0: no budget
	floodBurst       float64
	floodRate        float64 // < 0: unlimited
	maxSessions      int     // 0: no bound
	queue            int
	slow             time.Duration
	flush            time.Duration
	pingInterval     time.Duration
	pingTimeout      time.Duration
	hello            time.Duration
	maxRooms         int
	tick             time.Duration
}

func (c *Config) resolve() config {
	r := config{
		defaultRoom:      "#general",
		historySize:      500,
		historyReplay:    50,
		historyRoomBytes: 1 << 20,
		historyBytes:     64 << 20,
		floodBurst:       5,
		floodRate:        2,
		maxSessions:      10,
		queue:            512,
		slow:             10 * time.Second,
		flush:            2 * time.Second,
		pingInterval:     30 * time.Second,
		pingTimeout:      30 * time.Second,
		hello:            30 * time.Second,
		maxRooms:         1000,
	}
	if c.DefaultRoom != "" {
		r.defaultRoom = foldName(c.DefaultRoom)
	}
	set := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		} else if v < 0 {
			*dst = 0
		}
	}
	set(&r.historySize, c.HistorySize)
	set(&r.historyReplay, c.HistoryReplay)
	set(&r.historyRoomBytes, c.HistoryRoomBytes)
	set(&r.historyBytes, c.HistoryBytes)
	set(&r.maxSessions, c.MaxSessionsPerUser)
	if r.historyReplay > r.historySize {
		r.historyReplay = r.historySize
	}
	if c.FloodBurst > 0 {
		r.floodBurst = float64(c.FloodBurst)
	}
	if c.FloodRate != 0 {
		r.floodRate = c.FloodRate
	}
	if math.IsInf(r.floodRate, 1) || math.IsNaN(r.floodRate) {
		r.floodRate = -1
	}
	if c.SendQueue > 0 {
		r.queue = c.SendQueue
	}
	setDur := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	setDur(&r.slow, c.SlowConsumerTimeout)
	setDur(&r.flush, c.FlushTimeout)
	setDur(&r.pingInterval, c.PingInterval)
	setDur(&r.pingTimeout, c.PingTimeout)
	setDur(&r.hello, c.HelloTimeout)
	if c.MaxRooms > 0 {
		r.maxRooms = c.MaxRooms
	}
	// The housekeeping tick decides how late a timeout may fire: at most a
	// quarter of the shortest one.
	r.tick = min(r.slow, r.pingInterval, r.pingTimeout, r.hello) / 4
	r.tick = max(r.tick, time.Millisecond)
	return r
}

// Hub is the chat service. One goroutine, the hub loop, owns every room,
// user and session, so each room has a single total order and no lock is
// shared between sessions. The loop never blocks on a session: it hands
// encoded events to per-session bounded queues.
type Hub struct {
	cfg         config
	log         *slog.Logger
	isAdminFunc func(user string) bool

	in       chan inbound // requests read by the sessions' readers
	ops      chan op      // everything else, run on the loop
	stop     chan struct{}
	done     chan struct{} // closed when the loop has returned
	stopOnce sync.Once

	nextSession atomic.Uint64

	// Owned by the loop goroutine.
	now      time.Time
	sessions map[*session]struct{}
	users    map[string]*user    // users with a logged-in session
	accounts map[string]*account // accounts with an attached session
	rooms    map[string]*room
	bans     map[string]restriction
	mutes    map[string]restriction
	motd     string
	lastMID  uint64
	shutting bool
	drained  chan struct{} // closed once shutting and no session is left
	stats    Stats
	// Every room's history, oldest first, and what it is charged.
	histOldest, histNewest *histEntry
	histBytes              int
	spareEntry             *histEntry // forgotten, for keep to reuse
	encBuf                 bytes.Buffer
	enc                    *json.Encoder

	store      Store
	userExists func(string) bool
	posted     posted
	savedMID   uint64            // the last id given to store.SetLastID
	delivered  map[string]uint64 // per account: queued DMs delivered through this id
	queuedFor  map[string]uint64 // per offline account: the last DM queued for it
	// sharedRooms is, with a relay, the rooms each account online here
	// was last said to be in, sorted.
	sharedRooms map[string][]string
	holdRooms   bool // a login is joining its rooms: share them once it has

	notStoredLogged time.Time // when logNotStored last logged
	notStoredQuiet  int       // failures not logged since

	relay      Relay
	resumeSeq  uint64                  // the log sequence to follow from, fixed at start
	appliedSeq uint64                  // the last log sequence delivered here
	waiting    map[uint64][]pendingAck // acks waiting for their message to be applied here
}

type op struct {
	f    func()
	done chan struct{}
}

type inbound struct {
	s   *session
	req *Request // nil when the message was not a JSON object
	err error    // decoding or flood error to answer
	// sigErr is the reader's verdict on a signed msg request: checked
	// there, on the session's own goroutine, so that the loop never
	// spends a signature verification (PROTOCOL.md §13.16.4).
	sigErr error
}

type restriction struct {
	until  time.Time // zero: until lifted
	by     string
	reason string
}

func (r restriction) active(now time.Time) bool { return r.until.IsZero() || now.Before(r.until) }

// Stats are counters for metrics.
type Stats struct {
	Sessions        int    // attached sessions
	Users           int    // users with a logged-in session
	Rooms           int    // rooms
	HistoryBytes    int    // charged to the rooms' history (Config.HistoryBytes)
	Messages        uint64 // msg events created (rooms, DMs, notices)
	Delivered       uint64 // events queued to sessions
	Dropped         uint64 // events dropped because a session's queue was full
	SlowDisconnects uint64 // sessions ended because their queue stayed full
	Stored          uint64 // messages handed to the Store
	NotStored       uint64 // messages and changes the Store refused or failed
	Requests        uint64 // requests read from clients and handled

	// Queued and MaxQueued are the events waiting in all sessions' send
	// queues together and in the longest one, at the time of the call.
	// They are summed by Stats, not kept up to date, so that fan-out pays
	// nothing for them.
	Queued, MaxQueued int
}

// NewHub starts a hub. Stop it with Shutdown or Close. With a
// Config.Store it panics if the stored state cannot be loaded: use Start.
func NewHub(cfg *Config) *Hub {
	h, err := Start(cfg)
	if err != nil {
		panic(err)
	}
	return h
}

// Start is NewHub, returning an error when the stored state cannot be
// loaded from Config.Store.
func Start(cfg *Config) (*Hub, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{
		cfg:         cfg.resolve(),
		log:         log,
		isAdminFunc: cfg.IsAdmin,
		accounts:    make(map[string]*account),
		in:          make(chan inbound, 256),
		ops:         make(chan op),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
		sessions:    make(map[*session]struct{}),
		users:       make(map[string]*user),
		rooms:       make(map[string]*room),
		bans:        make(map[string]restriction),
		mutes:       make(map[string]restriction),
		motd:        clampMOTD(cfg.MOTD),
		drained:     make(chan struct{}),
		store:       cfg.Store,
		userExists:  cfg.UserExists,
		delivered:   make(map[string]uint64),
		queuedFor:   make(map[string]uint64),
		sharedRooms: make(map[string][]string),
		relay:       cfg.Relay,
		waiting:     make(map[uint64][]pendingAck),
	}
	h.posted.wake = make(chan struct{}, 1)
	h.enc = json.NewEncoder(&h.encBuf)
	h.enc.SetEscapeHTML(false)
	if h.store != nil {
		h.now = time.Now()
		if err := h.loadState(cfg.MOTD); err != nil {
			return nil, err
		}
	}
	h.appliedSeq = LogSeq(h.lastMID)
	h.resumeSeq = h.appliedSeq + 1
	if h.relay != nil && cfg.MOTD != "" {
		// The operator's MOTD replaces the one the cluster holds, as it
		// replaces a stored one.
		h.shareMOTD()
	}
	go h.loop()
	return h, nil
}

// Serve runs one session until it ends and returns why: nil when the
// client ended it (CLOSE or /quit), ErrBanned, ErrClosed, an error wrapping
// ErrDisconnected when the hub ended it, or the error ReadMessage returned
// when the connection broke. It reads c in the calling goroutine, writes
// it from one goroutine of its own, and closes c before returning.
// Cancelling ctx ends the session with a notice.
func (h *Hub) Serve(ctx context.Context, c Conn, id Identity) error {
	s := h.newSession(c, id)
	if h.store != nil {
		// Read before the session is attached, on this goroutine: the
		// loop never waits for the disk.
		s.p = h.preload(s.name)
	} else if h.relay != nil {
		s.p = &persistState{} // for the answers that wait for the log
	}
	// A ban made on another server an instant ago holds here too.
	h.clusterBan(s.name)
	h.clusterDelivered(s.name)
	h.clusterRooms(s)
	attached := false
	if !h.call(func() { attached = h.attach(s) }) || !attached {
		s.closeConn()
		return ErrClosed
	}
	go s.writeLoop()

	cbDone := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(cbDone)
		h.call(func() {
			h.end(s, ending{notice: "the server is stopping this session", quit: "server stopping",
				log: "context done", result: context.Cause(ctx)})
		})
	})
	var readErr error
	if !s.refused { // written by attach, which returned before
		readErr = s.readLoop()
	}
	if !stop() {
		<-cbDone
	}
	h.call(func() { h.end(s, endingFor(readErr)) })
	<-s.writerDone
	s.closeConn()
	h.call(func() { h.gone(s) })
	return s.result
}

// endingFor describes a session whose reader stopped with err.
func endingFor(err error) ending {
	if err == nil || errors.Is(err, io.EOF) {
		return ending{quit: "quit", log: "client closed"}
	}
	return ending{quit: "connection lost", log: "read: " + err.Error(), result: err}
}

// Banned reports whether user is banned now. The glue asks before calling
// Serve, to refuse the login early; Serve checks again.
func (h *Hub) Banned(user string) bool {
	var banned bool
	h.call(func() {
		r, ok := h.bans[foldName(user)]
		banned = ok && r.active(h.now)
	})
	return banned
}

// Disconnect ends every session of user, telling each reason (for example
// when the account was deleted). It returns how many sessions it ended.
func (h *Hub) Disconnect(user, reason string) int {
	n := 0
	reason = clampReason(reason)
	h.call(func() {
		n = h.endUser(foldName(user), ending{
			notice: "disconnected by the server: " + reason,
			quit:   "disconnected: " + reason,
			log:    "disconnect: " + reason,
			result: fmt.Errorf("%w: %s", ErrDisconnected, reason),
		})
	})
	return n
}

// Notify sends a notice to every logged-in session of user and returns
// how many it reached.
func (h *Hub) Notify(user, text string) int {
	n := 0
	text = clampMOTD(text)
	h.call(func() {
		if u := h.users[foldName(user)]; u != nil {
			n = len(u.sessions)
			h.tell(u.name, text)
		}
	})
	return n
}

// SetMOTD replaces the message of the day shown at login.
func (h *Hub) SetMOTD(text string) {
	text = clampMOTD(text)
	h.call(func() { h.motd = text; h.saveMOTD(); h.shareMOTD() })
}

// Stats returns the hub's counters; zero after the hub stopped.
func (h *Hub) Stats() Stats {
	var st Stats
	h.call(func() {
		st = h.stats
		st.Sessions = len(h.sessions)
		st.Users = len(h.users)
		st.Rooms = len(h.rooms)
		st.HistoryBytes = h.histBytes
		for s := range h.sessions {
			n := s.out.len()
			st.Queued += n
			st.MaxQueued = max(st.MaxQueued, n)
		}
	})
	return st
}

// Shutdown tells every session that the server is shutting down, ends them
// (each writer sends what is queued, then the Conn is closed, which sends
// CLOSE), refuses new sessions and waits until every Serve call has
// finished or ctx is done. In the latter case it closes the remaining
// Conns at once and returns ctx.Err() without waiting for them. Either way
// the hub is stopped when Shutdown returns.
func (h *Hub) Shutdown(ctx context.Context) error {
	var drained chan struct{}
	if !h.call(func() {
		if !h.shutting {
			h.shutting = true
			h.log.Info("chat: shutting down", "sessions", len(h.sessions))
			for s := range h.sessions {
				// quit is what users on other servers of a cluster see.
				h.end(s, ending{notice: "the server is shutting down", quit: "server shutting down", log: "shutdown", result: ErrClosed})
			}
		}
		drained = h.drained
		h.checkDrained()
	}) {
		return nil
	}
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = ctx.Err()
	}
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.done
	return err
}

// Close stops the hub at once: Shutdown without a grace period.
func (h *Hub) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// call runs f on the loop and waits for it. It returns false, without
// running f, once the loop has stopped.
func (h *Hub) call(f func()) bool {
	o := op{f: f, done: make(chan struct{})}
	select {
	case h.ops <- o:
	case <-h.done:
		return false
	}
	<-o.done
	return true
}

func (h *Hub) loop() {
	defer close(h.done)
	ticker := time.NewTicker(h.cfg.tick)
	defer ticker.Stop()
	for {
		select {
		case m := <-h.in:
			h.now = time.Now()
			h.handle(m)
		case o := <-h.ops:
			h.now = time.Now()
			o.f()
			close(o.done)
		case <-h.posted.wake:
			h.now = time.Now()
			h.runPosted()
		case <-ticker.C:
			h.now = time.Now()
			h.tick()
		case <-h.stop:
			h.now = time.Now()
			h.saveLastID()
			h.abandon()
			return
		}
	}
}

// abandon ends what is left when the loop stops: the writers are told to
// finish and the Conns are closed so that blocked readers and writers
// return without the loop.
func (h *Hub) abandon() {
	for s := range h.sessions {
		if !s.ending {
			s.ending = true
			s.result = ErrClosed
			close(s.end)
		}
		if s.flushTimer != nil {
			s.flushTimer.Stop()
		}
		go s.closeConn()
	}
}

// tick does the housekeeping that depends on time alone.
func (h *Hub) tick() {
	now := h.now
	for s := range h.sessions {
		if s.ending {
			continue
		}
		if s.stalled {
			if s.out.len() <= h.cfg.queue/2 {
				h.recovered(s)
			} else if now.Sub(s.stalledSince) >= h.cfg.slow {
				h.stats.SlowDisconnects++
				h.end(s, ending{
					notice: "disconnected: your client did not read its messages for " + h.cfg.slow.String(),
					quit:   "connection too slow",
					log:    "slow consumer",
					result: fmt.Errorf("%w: slow consumer", ErrDisconnected),
				})
				continue
			}
		}
		if !s.loggedIn && now.Sub(s.attachedAt) >= h.cfg.hello {
			h.end(s, ending{notice: "disconnected: no hello", log: "no hello",
				result: fmt.Errorf("%w: no hello", ErrDisconnected)})
			continue
		}
		idle := now.Sub(s.lastSeen)
		if idle >= h.cfg.pingInterval+h.cfg.pingTimeout {
			h.end(s, ending{quit: "ping timeout", log: "ping timeout",
				result: fmt.Errorf("%w: ping timeout", ErrDisconnected)})
			continue
		}
		if idle >= h.cfg.pingInterval && now.Sub(s.lastPing) >= h.cfg.pingInterval {
			s.lastPing = now
			s.pingSeq++
			h.sendEvent(s, &Event{Type: TypePing, ID: fmt.Sprintf("s%d", s.pingSeq)})
		}
	}
	h.saveLastID()
	for name, r := range h.bans {
		if !r.active(now) {
			delete(h.bans, name)
		}
	}
	for name, r := range h.mutes {
		if !r.active(now) {
			delete(h.mutes, name)
		}
	}
}

func (h *Hub) checkDrained() {
	if h.shutting && len(h.sessions) == 0 {
		select {
		case <-h.drained:
		default:
			close(h.drained)
		}
	}
}

// encode returns the JSON form of e, or nil (logged) if it cannot be sent.
func (h *Hub) encode(e *Event) []byte {
	h.encBuf.Reset()
	if err := h.enc.Encode(e); err != nil {
		h.log.Error("chat: encode event", "type", e.Type, "err", err)
		return nil
	}
	b := bytes.TrimSuffix(h.encBuf.Bytes(), []byte{'\n'})
	if len(b) > MaxPayload {
		h.log.Error("chat: event too large", "type", e.Type, "cmd", e.Cmd, "bytes", len(b))
		return nil
	}
	return bytes.Clone(b)
}

func clampMOTD(s string) string {
	s = SanitizeMultiline(s)
	return truncateUTF8(s, MaxMOTD)
}

func clampReason(s string) string {
	return truncateUTF8(SanitizeText(s), MaxReason)
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}

func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
