// Package chatstore lets the chat service keep its state in a store: it
// adapts a [store.Store] to [chat.Store]. The two packages do not import
// each other; this one, and the command that wires a server, sees both.
package chatstore

import (
	"errors"
	"fmt"

	"securechat/chat"
	"securechat/store"
)

// Adapter is a *store.Store seen as a chat.Store. It does not own the
// store: close that yourself, after the hub has stopped.
type Adapter struct{ S *store.Store }

var _ chat.Store = Adapter{}

// New returns s as a chat.Store.
func New(s *store.Store) Adapter { return Adapter{S: s} }

// wrap marks the errors that mean a full disk or a stalled one, which the
// chat service tells senders as such.
func wrap(err error) error {
	if err != nil && (errors.Is(err, store.ErrDiskFull) || errors.Is(err, store.ErrBacklog)) {
		return fmt.Errorf("%w: %w", chat.ErrStoreFull, err)
	}
	return err
}

func toStore(m chat.StoredMessage) store.Message {
	return store.Message{ID: m.ID, Time: m.Time, Kind: m.Kind, Room: m.Room, From: m.From, To: m.To,
		Text: m.Text, Queued: m.Queued, Key: m.Key, Sig: m.Sig, Ctr: m.Ctr, Cts: m.Cts}
}

func fromStore(ms []store.Message, err error) ([]chat.StoredMessage, error) {
	if err != nil {
		return nil, err
	}
	out := make([]chat.StoredMessage, len(ms))
	for i, m := range ms {
		out[i] = chat.StoredMessage{ID: m.ID, Time: m.Time, Kind: m.Kind, Room: m.Room, From: m.From,
			To: m.To, Text: m.Text, Queued: m.Queued, Key: m.Key, Sig: m.Sig, Ctr: m.Ctr, Cts: m.Cts}
	}
	return out, nil
}

func restrictions(rs []store.Restriction) []chat.StoredRestriction {
	out := make([]chat.StoredRestriction, len(rs))
	for i, r := range rs {
		out[i] = chat.StoredRestriction{User: r.User, Until: r.Until, By: r.By, Reason: r.Reason}
	}
	return out
}

func restriction(r chat.StoredRestriction) store.Restriction {
	return store.Restriction{User: r.User, Until: r.Until, By: r.By, Reason: r.Reason}
}

func (a Adapter) Load() (chat.StoredState, error) {
	st, err := a.S.Load()
	if err != nil {
		return chat.StoredState{}, err
	}
	out := chat.StoredState{LastID: st.LastID, MOTD: st.MOTD, Bans: restrictions(st.Bans), Mutes: restrictions(st.Mutes)}
	for _, r := range st.Rooms {
		out.Rooms = append(out.Rooms, chat.StoredRoom{Name: r.Name, Topic: r.Topic})
	}
	return out, nil
}

func (a Adapter) Append(m chat.StoredMessage, done func(error)) error {
	return wrap(a.S.Append(toStore(m), func(err error) { done(wrap(err)) }))
}

func (a Adapter) SetMOTD(text string) error              { return wrap(a.S.SetMOTD(text)) }
func (a Adapter) SetTopic(room, topic string) error      { return wrap(a.S.SetTopic(room, topic)) }
func (a Adapter) AddRoom(room string) error              { return wrap(a.S.AddRoom(room)) }
func (a Adapter) RemoveRoom(room string) error           { return wrap(a.S.RemoveRoom(room)) }
func (a Adapter) Ban(r chat.StoredRestriction) error     { return wrap(a.S.Ban(restriction(r))) }
func (a Adapter) Unban(user string) error                { return wrap(a.S.Unban(user)) }
func (a Adapter) Mute(r chat.StoredRestriction) error    { return wrap(a.S.Mute(restriction(r))) }
func (a Adapter) Unmute(user string) error               { return wrap(a.S.Unmute(user)) }
func (a Adapter) Join(user, room string) error           { return wrap(a.S.Join(user, room)) }
func (a Adapter) Part(user, room string) error           { return wrap(a.S.Part(user, room)) }
func (a Adapter) Delivered(user string, id uint64) error { return wrap(a.S.Delivered(user, id)) }
func (a Adapter) SetLastID(id uint64) error              { return wrap(a.S.SetLastID(id)) }
func (a Adapter) Sync() error                            { return wrap(a.S.Sync()) }

func (a Adapter) SetLastRead(user, room string, id uint64) error {
	return wrap(a.S.SetLastRead(user, room, id))
}

func (a Adapter) History(room string, before uint64, n int) ([]chat.StoredMessage, error) {
	return fromStore(a.S.History(room, before, n))
}

func (a Adapter) DMHistory(x, y string, before uint64, n int) ([]chat.StoredMessage, error) {
	return fromStore(a.S.DMHistory(x, y, before, n))
}

func (a Adapter) Pending(user string, n int) ([]chat.StoredMessage, error) {
	return fromStore(a.S.Pending(user, n))
}

func (a Adapter) Search(text string, rooms []string, before uint64, n int) ([]chat.StoredMessage, error) {
	return fromStore(a.S.Search(text, rooms, before, n))
}

func (a Adapter) Rooms(user string) ([]string, error)             { return a.S.Rooms(user) }
func (a Adapter) LastRead(user string) (map[string]uint64, error) { return a.S.LastRead(user) }
func (a Adapter) CountAfter(room string, id uint64) (int, error)  { return a.S.CountAfter(room, id) }
