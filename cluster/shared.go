package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BucketName is the JetStream key-value bucket of the shared chat state.
const BucketName = "securechat_state"

// Keys of the bucket: "ban.<user>", "mute.<user>", "topic.<room>",
// "delivered.<user>", "rooms.<user>", "read.<user>" (names encoded as by
// subject tokens) and "motd". Watchers pass over "read." keys: a node asks
// for them at login.
const (
	keyBan       = "ban."
	keyMute      = "mute."
	keyTopic     = "topic."
	keyDelivered = "delivered."
	keyRooms     = "rooms."
	keyRead      = "read."
	keyMOTD      = "motd"
)

// StateKind says what a [Change] is about.
type StateKind uint8

const (
	StateBan StateKind = iota + 1
	StateMute
	StateTopic
	StateMOTD
	StateDelivered
	StateRooms
)

func (k StateKind) String() string {
	switch k {
	case StateBan:
		return "ban"
	case StateMute:
		return "mute"
	case StateTopic:
		return "topic"
	case StateMOTD:
		return "motd"
	case StateDelivered:
		return "delivered"
	case StateRooms:
		return "rooms"
	}
	return "unknown"
}

// Restriction is a ban or a mute.
type Restriction struct {
	User   string    `json:"user"`
	Until  time.Time `json:"until,omitzero"` // zero: until lifted
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
}

// Active reports whether r still holds at now.
func (r Restriction) Active(now time.Time) bool { return r.Until.IsZero() || now.Before(r.Until) }

// Change is one update of the shared state, as a [StateWatcher] delivers it.
type Change struct {
	Kind StateKind
	// Name is the user (ban, mute) or the room (topic); empty for the MOTD.
	Name string
	// Removed says the ban or mute was lifted, or the topic or MOTD cleared.
	Removed bool
	// Restriction is the ban or mute set; Text the topic or MOTD set.
	Restriction Restriction
	Text        string
	// Through is, for a delivered mark, the id of the last queued direct
	// message delivered to the user Name.
	Through uint64
	// Rooms are, for a room list, the rooms the user Name rejoins at
	// login.
	Rooms []string
	// Revision orders changes to the bucket: higher is newer.
	Revision uint64
}

// Shared is the chat state every node must agree on at once: bans, mutes,
// room topics and the MOTD, in a replicated JetStream key-value bucket. A
// write returns once the bucket has stored it; every node's watcher then
// sees it, in the order of the bucket's revisions. Shared is safe for
// concurrent use.
type Shared struct {
	c  *Conn
	kv jetstream.KeyValue
}

// Shared creates the state bucket, or opens it, with replicas copies (as
// for the message stream: 1, or 3 in a three-server cluster). It tries
// again as [Conn.EnsureStream] does.
func (c *Conn) Shared(ctx context.Context, replicas int) (*Shared, error) {
	if replicas <= 0 {
		replicas = 1
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	var kv jetstream.KeyValue
	err := retryEach(ctx, setUpAttempt, func(ctx context.Context) (err error) {
		kv, err = c.js.CreateOrUpdateKeyValue(ctx, bucketConfig(replicas))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: state bucket: %w", err)
	}
	return &Shared{c: c, kv: kv}, nil
}

func bucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      BucketName,
		Description: "securechat bans, mutes, topics and MOTD",
		// A few revisions per key, so that a watcher that falls behind
		// (a loaded node) still sees a ban and the unban that follows it,
		// not only the latest value: with one, the stream drops the
		// older revision before a slow watcher reads it.
		History:  8,
		Replicas: replicas,
		Storage:  jetstream.FileStorage,
	}
}

// Ban bans r.User on every node until r.Until; Unban lifts it. Mute and
// Unmute do the same for mutes. Each returns once the bucket has stored
// the change. Like every write to the bucket, they wait out a NATS leader
// election as [Conn.Publish] does (a write repeated after a lost answer
// stores the same value again, which changes nothing).
func (s *Shared) Ban(ctx context.Context, r Restriction) error {
	return s.putJSON(ctx, keyBan+token(r.User), r)
}
func (s *Shared) Unban(ctx context.Context, user string) error {
	return s.del(ctx, keyBan+token(user))
}
func (s *Shared) Mute(ctx context.Context, r Restriction) error {
	return s.putJSON(ctx, keyMute+token(r.User), r)
}
func (s *Shared) Unmute(ctx context.Context, user string) error {
	return s.del(ctx, keyMute+token(user))
}

// SetTopic sets room's topic; an empty topic clears it.
func (s *Shared) SetTopic(ctx context.Context, room, topic string) error {
	if topic == "" {
		return s.del(ctx, keyTopic+token(room))
	}
	return s.put(ctx, keyTopic+token(room), []byte(topic))
}

// SetMOTD sets the message of the day; an empty one clears it.
func (s *Shared) SetMOTD(ctx context.Context, text string) error {
	if text == "" {
		return s.del(ctx, keyMOTD)
	}
	return s.put(ctx, keyMOTD, []byte(text))
}

// SetDelivered records that user has been given the direct messages queued
// for it up to the one with id through, so that a login on another node
// does not give them again. The mark only grows: a lower through, from a
// node that delivered less, leaves it as it is.
func (s *Shared) SetDelivered(ctx context.Context, user string, through uint64) error {
	err := s.merge(ctx, keyDelivered+token(user), func(old []byte) ([]byte, bool) {
		if mark, err := strconv.ParseUint(string(old), 10, 64); err == nil && mark >= through {
			return nil, false
		}
		return []byte(strconv.FormatUint(through, 10)), true
	})
	if err != nil {
		return fmt.Errorf("cluster: store delivered mark: %w", err)
	}
	return nil
}

// SetLastRead records that user has read room up to the message with id
// through, so that a login on any node can say how much is new in the
// room since. Like the delivered mark, a position only moves forward.
func (s *Shared) SetLastRead(ctx context.Context, user, room string, through uint64) error {
	err := s.merge(ctx, keyRead+token(user), func(old []byte) ([]byte, bool) {
		read := map[string]uint64{}
		if old != nil && json.Unmarshal(old, &read) != nil {
			read = map[string]uint64{}
		}
		if read[room] >= through {
			return nil, false
		}
		read[room] = through
		value, err := json.Marshal(read)
		return value, err == nil
	})
	if err != nil {
		return fmt.Errorf("cluster: store last-read position: %w", err)
	}
	return nil
}

// LastRead reads the positions [Shared.SetLastRead] recorded for user, by
// room, from the bucket's stream leader; nil if none.
func (s *Shared) LastRead(ctx context.Context, user string) (map[string]uint64, error) {
	value, found, err := s.current(ctx, keyRead+token(user))
	if err != nil || !found {
		return nil, err
	}
	var read map[string]uint64
	if err := json.Unmarshal(value, &read); err != nil {
		return nil, fmt.Errorf("cluster: read last-read positions: %w", err)
	}
	return read, nil
}

// merge replaces key's value with what next makes of it (old is nil when
// there is none), by compare and set: two nodes that write at once make
// one of them read again. next returns write false to leave it as it is.
func (s *Shared) merge(ctx context.Context, key string, next func(old []byte) (value []byte, write bool)) error {
	return retry(ctx, func(ctx context.Context) error {
		for range 16 {
			e, err := s.kv.Get(ctx, key)
			var old []byte
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
			case err != nil:
				return err
			default:
				old = e.Value()
			}
			value, write := next(old)
			if !write {
				return nil
			}
			if e == nil {
				_, err = s.kv.Create(ctx, key, value)
			} else {
				_, err = s.kv.Update(ctx, key, value, e.Revision())
			}
			if err == nil || !conflict(err) {
				return err
			}
		}
		return errors.New("too many concurrent writers")
	})
}

// conflict reports whether a compare-and-set write lost to another.
func conflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// SetRooms records the rooms user is in, which its next login, on any
// node, puts it back in. The last write wins.
func (s *Shared) SetRooms(ctx context.Context, user string, rooms []string) error {
	if rooms == nil {
		rooms = []string{}
	}
	return s.putJSON(ctx, keyRooms+token(user), rooms)
}

// SavedRooms reads the rooms [Shared.SetRooms] recorded for user, from
// the bucket's stream leader; found is false if none were.
func (s *Shared) SavedRooms(ctx context.Context, user string) (rooms []string, found bool, err error) {
	value, found, err := s.current(ctx, keyRooms+token(user))
	if err != nil || !found {
		return nil, false, err
	}
	if err := json.Unmarshal(value, &rooms); err != nil {
		return nil, false, fmt.Errorf("cluster: read rooms: %w", err)
	}
	return rooms, true, nil
}

// Delivered reads user's delivered mark (see [Shared.SetDelivered]) from
// the bucket's stream leader; 0 if none.
func (s *Shared) Delivered(ctx context.Context, user string) (uint64, error) {
	value, found, err := s.current(ctx, keyDelivered+token(user))
	if err != nil || !found {
		return 0, err
	}
	through, err := strconv.ParseUint(string(value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cluster: read delivered mark: %w", err)
	}
	return through, nil
}

// Banned reads user's ban from the bucket. ok is false when there is none
// or it has expired.
func (s *Shared) Banned(ctx context.Context, user string) (r Restriction, ok bool, err error) {
	value, found, err := s.current(ctx, keyBan+token(user))
	if err != nil {
		return Restriction{}, false, fmt.Errorf("cluster: read ban: %w", err)
	}
	if !found {
		return Restriction{}, false, nil
	}
	if err := json.Unmarshal(value, &r); err != nil {
		return Restriction{}, false, fmt.Errorf("cluster: read ban: %w", err)
	}
	return r, r.Active(time.Now()), nil
}

// current reads key's latest value from the bucket's stream leader. The
// bucket's own Get may be answered by any replica (direct get), and a
// replica that has not applied a write yet answers with the value before
// it: a ban made on one node would not hold for a moment on another, and
// an unban there would see nothing to remove. The leader has every write
// whose Put has returned.
func (s *Shared) current(ctx context.Context, key string) (value []byte, found bool, err error) {
	req, err := json.Marshal(struct {
		LastBySubject string `json:"last_by_subj"`
	}{kvSubjectPrefix + key})
	if err != nil {
		return nil, false, err
	}
	err = retry(ctx, func(ctx context.Context) error {
		msg, err := s.c.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+kvStreamName, req)
		if err != nil {
			return err
		}
		var resp struct {
			Message *struct {
				Header []byte `json:"hdrs"`
				Data   []byte `json:"data"`
			} `json:"message"`
			Error *jetstream.APIError `json:"error"`
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return fmt.Errorf("undecodable answer: %w", err)
		}
		switch {
		case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
			value, found = nil, false
			return nil
		case resp.Error != nil:
			return resp.Error
		case resp.Message == nil:
			return jetstream.ErrInvalidJetStreamResponse
		}
		value, found = resp.Message.Data, !isKVRemoval(resp.Message.Header)
		return nil
	})
	return value, found, err
}

// The stream and subjects behind a JetStream key-value bucket, as the
// bucket's clients name them.
const (
	kvStreamName    = "KV_" + BucketName
	kvSubjectPrefix = "$KV." + BucketName + "."
)

// isKVRemoval reports whether a bucket message's headers mark a delete or
// a purge rather than a value.
func isKVRemoval(header []byte) bool {
	if len(header) == 0 {
		return false
	}
	h, err := nats.DecodeHeadersMsg(header)
	if err != nil {
		return false
	}
	op := h.Get("KV-Operation")
	return op == "DEL" || op == "PURGE"
}

func (s *Shared) putJSON(ctx context.Context, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return s.put(ctx, key, data)
}

func (s *Shared) put(ctx context.Context, key string, value []byte) error {
	err := retry(ctx, func(ctx context.Context) error {
		_, err := s.kv.Put(ctx, key, value)
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: store %s: %w", strings.SplitN(key, ".", 2)[0], err)
	}
	return nil
}

func (s *Shared) del(ctx context.Context, key string) error {
	err := retry(ctx, func(ctx context.Context) error {
		// Removing what is not there is a no-op, not a delete marker that
		// every watcher would be told about. A set that races with this
		// remove wins, as if it came after it.
		_, found, err := s.current(ctx, key)
		if err != nil || !found {
			return err
		}
		err = s.kv.Delete(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: remove %s: %w", strings.SplitN(key, ".", 2)[0], err)
	}
	return nil
}

// StateWatcher delivers the shared state and its changes; see [Shared.Watch].
type StateWatcher struct {
	w      jetstream.KeyWatcher
	synced chan struct{}
	done   chan struct{}
	once   sync.Once
}

// Watch calls fn with the current value of every key (the state as it is
// now), closes Synced, and then calls fn with each later change, in order,
// until Stop or the connection closes. fn runs on the watcher's goroutine,
// one change at a time, and must not block for long. A node loads its
// bans, mutes, topics and MOTD from the first calls, and waits for Synced
// before it lets users in, so that no banned user slips in at start.
func (s *Shared) Watch(ctx context.Context, fn func(Change)) (*StateWatcher, error) {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: watch state: %w", err)
	}
	sw := &StateWatcher{w: w, synced: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(sw.done)
		for e := range w.Updates() {
			if e == nil {
				// The end of the initial values.
				sw.once.Do(func() { close(sw.synced) })
				continue
			}
			ch, ok := decodeChange(e)
			if !ok {
				s.c.log.Error("cluster: undecodable state entry skipped", "revision", e.Revision())
				continue
			}
			fn(ch)
		}
	}()
	return sw, nil
}

// Synced is closed once the watcher has delivered every value the bucket
// held when it started.
func (sw *StateWatcher) Synced() <-chan struct{} { return sw.synced }

// Stop stops the watcher and waits until fn is no longer running.
func (sw *StateWatcher) Stop() {
	_ = sw.w.Stop()
	<-sw.done
}

func decodeChange(e jetstream.KeyValueEntry) (Change, bool) {
	ch := Change{Revision: e.Revision()}
	ch.Removed = e.Operation() != jetstream.KeyValuePut
	key := e.Key()
	if key == keyMOTD {
		ch.Kind, ch.Text = StateMOTD, string(e.Value())
		return ch, true
	}
	prefix, enc, ok := strings.Cut(key, ".")
	if !ok {
		return ch, false
	}
	name, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return ch, false
	}
	ch.Name = string(name)
	switch prefix + "." {
	case keyRooms:
		ch.Kind = StateRooms
		if !ch.Removed && json.Unmarshal(e.Value(), &ch.Rooms) != nil {
			return ch, false
		}
		return ch, true
	case keyDelivered:
		ch.Kind = StateDelivered
		if !ch.Removed {
			through, err := strconv.ParseUint(string(e.Value()), 10, 64)
			if err != nil {
				return ch, false
			}
			ch.Through = through
		}
		return ch, true
	case keyTopic:
		ch.Kind, ch.Text = StateTopic, string(e.Value())
		return ch, true
	case keyBan, keyMute:
		ch.Kind = StateBan
		if prefix+"." == keyMute {
			ch.Kind = StateMute
		}
		if ch.Removed {
			ch.Restriction = Restriction{User: ch.Name}
			return ch, true
		}
		if err := json.Unmarshal(e.Value(), &ch.Restriction); err != nil {
			return ch, false
		}
		ch.Restriction.User = ch.Name
		return ch, true
	}
	return ch, false
}
