package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Message kinds, the same words the store uses.
const (
	KindMsg   = "msg"   // a room message
	KindMe    = "me"    // a room action
	KindTopic = "topic" // a topic change; Text is the new topic
	KindDM    = "dm"    // a direct message; To is the recipient
)

// Message is one entry of the log: a room event or a direct message.
type Message struct {
	// Seq is the stream sequence, set by [Conn.Publish] and on each message
	// a [Follower] delivers. It orders the whole log (so every room), never
	// repeats, and is the message id that clients see.
	Seq uint64 `json:"-"`

	// ID names the message for deduplication: a publish retried with the
	// same ID within [StreamConfig.Duplicates] is stored once and acked
	// with the first one's Seq. Empty: Publish makes a random one.
	ID string `json:"id"`

	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	Room string    `json:"room,omitempty"`
	From string    `json:"from"`
	To   string    `json:"to,omitempty"`
	Text string    `json:"text"`

	// Node is the node that published the message. Queued says the
	// recipient of a direct message had no session anywhere when it was
	// sent, so the node that applies it keeps it for later delivery.
	Node   string `json:"node,omitempty"`
	Queued bool   `json:"queued,omitempty"`

	// Key, Sig, Ctr and Cts are a signed message's signature fields as the
	// sender's client made them: they travel through the log unchanged,
	// so that every reader can verify the message on any node. Empty and
	// zero for an unsigned message.
	Key string `json:"key,omitempty"`
	Sig string `json:"sig,omitempty"`
	Ctr uint64 `json:"ctr,omitempty"`
	Cts uint64 `json:"cts,omitempty"`
}

// StreamConfig configures the message stream. The zero value is a
// single-replica stream that keeps everything and deduplicates for two
// minutes.
type StreamConfig struct {
	// Replicas is how many NATS servers keep each message: 1, or 3 in a
	// three-server cluster, where a message is acked only once two of the
	// three have it, and one server may fail without loss.
	Replicas int
	// Duplicates is the window in which a republished message ID is
	// recognised: two minutes by default.
	Duplicates time.Duration
	// MaxAge drops messages older than this from the stream (each node's
	// store keeps its own history). Zero: keep them.
	MaxAge time.Duration
	// MaxBytes bounds the stream; the oldest messages go first. Zero: no limit.
	MaxBytes int64
}

// The stream and its subjects. A room's messages go to
// securechat.room.<room>, a direct message to securechat.dm.<a>.<b> with
// the two accounts in name order, each name encoded by token, so that a
// subject filter picks one conversation.
const (
	StreamName = "SECURECHAT"
	roomPrefix = "securechat.room."
	dmPrefix   = "securechat.dm."
)

// token encodes a room or account name as one subject token. Names may hold
// characters NATS gives meaning to ('.', '*', '>', space); unpadded
// base64url has none of them, and is never empty for a non-empty name.
func token(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

// RoomSubject is the subject of room's messages.
func RoomSubject(room string) string { return roomPrefix + token(room) }

// DMSubject is the subject of the direct messages between a and b, in
// either direction.
func DMSubject(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return dmPrefix + token(a) + "." + token(b)
}

func (m *Message) subject() (string, error) {
	switch m.Kind {
	case KindMsg, KindMe, KindTopic:
		if m.Room == "" {
			return "", fmt.Errorf("cluster: a %s message needs a room", m.Kind)
		}
		return RoomSubject(m.Room), nil
	case KindDM:
		if m.From == "" || m.To == "" {
			return "", errors.New("cluster: a direct message needs a sender and a recipient")
		}
		return DMSubject(m.From, m.To), nil
	default:
		return "", fmt.Errorf("cluster: unknown message kind %q", m.Kind)
	}
}

// EnsureStream creates the message stream, or updates it to cfg if it
// exists. Every node calls it at start with the same cfg; it is idempotent.
// Changing Replicas of an existing stream is allowed; shrinking the limits
// drops old messages. Like Publish it tries again past a lost answer or a
// leader election, until ctx ends.
func (c *Conn) EnsureStream(ctx context.Context, cfg StreamConfig) error {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Duplicates <= 0 {
		cfg.Duplicates = 2 * time.Minute
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	err := retryEach(ctx, setUpAttempt, func(ctx context.Context) error {
		_, err := c.js.CreateOrUpdateStream(ctx, streamConfig(cfg))
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: message stream: %w", err)
	}
	return nil
}

// setUpAttempt bounds one attempt to create or update the stream or the
// bucket: an R3 create under load takes a few seconds, and a request whose
// answer was lost (a route to the meta leader reconnecting) is sent again
// rather than waited on until the caller's deadline.
const setUpAttempt = 5 * time.Second

func streamConfig(cfg StreamConfig) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "securechat room and direct messages",
		Subjects:    []string{roomPrefix + "*", dmPrefix + "*.*"},
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.Duplicates,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    orUnlimited(cfg.MaxBytes),
		MaxMsgs:     -1,
		Discard:     jetstream.DiscardOld,
		// The log is the record: nobody may delete or purge from it but
		// an operator with the NATS tools.
		DenyDelete: true,
		DenyPurge:  true,
	}
}

func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

func (c *Conn) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// PublishPatience is how long [Conn.Publish] and the writes of [Shared]
// keep trying when their context has no deadline: longer than NATS takes to elect a new stream leader
// after a server failed (4 to 9 seconds in the tests).
const PublishPatience = 15 * time.Second

// Publish appends m to the log and returns its stream sequence. It returns
// only once JetStream has stored the message (on a majority of replicas):
// acknowledge the message to its sender then, and not before. m.Time is set
// to now if zero, m.Node to this node.
//
// Publish retries past timeouts, lost connections and leader elections
// until ctx is done (or for [PublishPatience] if ctx has no deadline),
// always with the same message ID, so a message stored by an attempt whose ack was lost
// is stored once and its first sequence returned. A caller that gets an
// error and retries should pass the same m, ID included.
func (c *Conn) Publish(ctx context.Context, m Message) (uint64, error) {
	subj, err := m.subject()
	if err != nil {
		return 0, err
	}
	if m.ID == "" {
		m.ID = nuid.Next()
	}
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	if m.Node == "" {
		m.Node = c.name
	}
	data, err := json.Marshal(&m)
	if err != nil {
		return 0, fmt.Errorf("cluster: %w", err)
	}
	var seq uint64
	err = retry(ctx, func(ctx context.Context) error {
		ack, err := c.js.Publish(ctx, subj, data, jetstream.WithMsgID(m.ID), jetstream.WithExpectStream(StreamName))
		if err == nil {
			seq = ack.Sequence
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("cluster: publish: %w", err)
	}
	return seq, nil
}

// retry runs op, each attempt bounded to 2 s, until it succeeds, fails
// for good, or ctx ends (after [PublishPatience] if ctx has no deadline).
func retry(ctx context.Context, op func(context.Context) error) error {
	return retryEach(ctx, 2*time.Second, op)
}

// retryEach is retry with each attempt bounded to per.
func retryEach(ctx context.Context, per time.Duration, op func(context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, PublishPatience)
		defer cancel()
	}
	wait := 50 * time.Millisecond
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, per)
		err := op(attempt)
		cancelAttempt()
		if err == nil || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not stored in time: %w", err)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// retryable reports whether a publish may have failed only for the moment:
// a server down, a stream leader being elected, an ack that did not come.
func retryable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 503: no quorum or no leader yet, during a failover.
		return apiErr.Code == 503 || apiErr.Code == 500
	}
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrNoServers)
}

// LastSeq is the sequence of the newest message in the log, 0 if none.
func (c *Conn) LastSeq(ctx context.Context) (uint64, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	s, err := c.js.Stream(ctx, StreamName)
	if err != nil {
		return 0, fmt.Errorf("cluster: message stream: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("cluster: message stream: %w", err)
	}
	return info.State.LastSeq, nil
}

// A Follower applies the log to a node's own store: it calls its apply
// function for each message in stream order, each sequence once and higher
// than the one before, across reconnects and NATS server failures. It is
// made by [Conn.Follow].
type Follower struct {
	c        *Conn
	apply    func(Message)
	applied  atomic.Uint64
	caughtUp chan struct{}
	upOnce   sync.Once
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	err      error

	mu   sync.Mutex // guards iter against Stop
	iter jetstream.MessagesContext

	// Owned by the follower's goroutine (and Follow before it starts).
	delivered  uint64 // the consumer's delivery sequence last seen
	reconnects uint64 // the connection's reconnect count when opened
}

// How a follower notices that its consumer is gone (its NATS server died):
// the server sends a heartbeat every followHeartbeat while idle, and two
// missed ones make the follower open another. Short, so that a node's users do not wait
// long for messages after a NATS failover; the cost is one small message a
// second per node while idle.
const (
	followHeartbeat = time.Second
	followExpiry    = 5 * time.Second
)

// Follow starts applying the log from sequence from (1 or 0: the start).
// A node passes one more than the last sequence its store holds, so after a
// restart it catches up on what it missed and goes on with new messages.
// ctx bounds only the set-up; the follower runs until [Follower.Stop] or
// until c closes.
//
// apply runs on the follower's goroutine, one message at a time; while it
// runs, later messages wait. It must not block for long (queue to the store
// and return). Messages the stream no longer holds (past MaxAge or
// MaxBytes) are skipped. Messages that cannot be decoded are skipped and
// reported to the logger, so that one bad entry cannot stop a node.
func (c *Conn) Follow(ctx context.Context, from uint64, apply func(Message)) (*Follower, error) {
	f := &Follower{c: c, apply: apply, caughtUp: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	if from > 0 {
		f.applied.Store(from - 1)
	}
	sctx, cancel := c.withTimeout(ctx)
	defer cancel()
	iter, pending, err := f.open(sctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: follow the log: %w", err)
	}
	f.iter = iter
	if pending == 0 {
		f.markCaughtUp()
	}
	go f.run()
	return f, nil
}

// open makes a consumer that starts one past the last applied sequence.
// Right after a NATS server failed, the cluster may take a few seconds to
// elect new leaders, and a request may go unanswered: open tries again,
// each attempt bounded, until ctx ends or the follower is stopped.
//
// The consumer is ephemeral, unacknowledged and kept in memory on one
// server, which is cheap; when that server or the link to it fails, run
// notices (missed heartbeats, a gap in the consumer's own sequence, a
// reconnect) and opens another from where it was.
func (f *Follower) open(ctx context.Context) (jetstream.MessagesContext, uint64, error) {
	cfg := jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: 30 * time.Second, // a dead node's consumer goes
	}
	if next := f.applied.Load() + 1; next > 1 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = next
	}
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		iter, pending, err := f.tryOpen(ctx, cfg)
		if err == nil {
			return iter, pending, nil
		}
		if !retryable(err) {
			return nil, 0, err
		}
		select {
		case <-ctx.Done():
			return nil, 0, err
		case <-f.stop:
			return nil, 0, jetstream.ErrMsgIteratorClosed
		case <-time.After(wait):
		}
	}
}

func (f *Follower) tryOpen(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.MessagesContext, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	f.reconnects = f.c.reconnects.Load()
	cons, err := f.c.js.CreateConsumer(ctx, StreamName, cfg)
	if err != nil {
		return nil, 0, err
	}
	iter, err := cons.Messages(jetstream.PullExpiry(followExpiry), jetstream.PullHeartbeat(followHeartbeat))
	if err != nil {
		return nil, 0, err
	}
	f.delivered = 0
	return iter, cons.CachedInfo().NumPending, nil
}

func (f *Follower) markCaughtUp() { f.upOnce.Do(func() { close(f.caughtUp) }) }

func (f *Follower) stopped() bool {
	select {
	case <-f.stop:
		return true
	default:
		return false
	}
}

// errResume makes run open a new consumer.
var errResume = errors.New("consumer lost")

func (f *Follower) run() {
	defer close(f.done)
	f.mu.Lock()
	iter := f.iter
	f.mu.Unlock()
	for {
		msg, err := iter.Next(jetstream.NextMaxWait(2 * followHeartbeat))
		if errors.Is(err, nats.ErrTimeout) {
			// Idle. A reconnect may have lost messages in flight without
			// a later one to show the gap: start again from what was
			// applied, to be sure.
			if f.c.reconnects.Load() == f.reconnects {
				continue
			}
			err = fmt.Errorf("%w: reconnected", errResume)
		} else if err == nil {
			err = f.handle(msg)
		}
		if err == nil {
			continue
		}
		iter.Stop()
		if f.stopped() {
			return
		}
		if f.c.nc.IsClosed() {
			f.err = nats.ErrConnectionClosed
			return
		}
		f.c.log.Warn("cluster: following the log again", "reason", err, "applied", f.applied.Load())
		// Without a deadline: a node keeps trying for as long as it runs;
		// Stop ends the attempts.
		iter, _, err = f.open(context.Background())
		if err != nil {
			if !f.stopped() {
				f.err = err
				f.c.log.Error("cluster: following the log stopped", "err", err)
			}
			return
		}
		f.mu.Lock()
		f.iter = iter
		f.mu.Unlock()
		if f.stopped() {
			iter.Stop()
			return
		}
	}
}

// handle applies one delivered message. It returns errResume when the
// consumer skipped a delivery, which happens when messages were lost in
// flight: the stream still has them, and a new consumer fetches them.
func (f *Follower) handle(msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("%w: %v", errResume, err)
	}
	if meta.Sequence.Consumer != f.delivered+1 {
		return fmt.Errorf("%w: delivery %d after %d", errResume, meta.Sequence.Consumer, f.delivered)
	}
	f.delivered = meta.Sequence.Consumer
	seq := meta.Sequence.Stream
	if seq <= f.applied.Load() {
		return nil // already applied
	}
	var m Message
	if err := json.Unmarshal(msg.Data(), &m); err != nil || !strings.HasPrefix(msg.Subject(), "securechat.") {
		f.c.log.Error("cluster: undecodable log entry skipped", "seq", seq, "subject", msg.Subject())
	} else {
		m.Seq = seq
		f.apply(m)
	}
	f.applied.Store(seq)
	if meta.NumPending == 0 {
		f.markCaughtUp()
	}
	return nil
}

// Applied is the sequence of the last message handed to apply (or skipped).
func (f *Follower) Applied() uint64 { return f.applied.Load() }

// CaughtUp is closed once the follower has applied every message the
// stream held when it started, so that a restarted node can wait for it
// before it serves history.
func (f *Follower) CaughtUp() <-chan struct{} { return f.caughtUp }

// Stop stops the follower and waits until apply is no longer running. It
// returns the error that stopped the follower early, if one did.
func (f *Follower) Stop() error {
	f.stopOnce.Do(func() {
		close(f.stop)
		f.mu.Lock()
		f.iter.Stop()
		f.mu.Unlock()
	})
	<-f.done
	return f.err
}
