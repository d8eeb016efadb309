package chat

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeConn is an in-memory Conn. The test plays the client: it pushes
// requests into in and reads the decoded events the hub wrote.
type fakeConn struct {
	t         testing.TB
	in        chan []byte
	hup       chan struct{} // closed when the client ends the session cleanly
	closed    chan struct{} // closed by Close
	closeOnce sync.Once
	hupOnce   sync.Once
	closes    atomic.Int32

	stall    atomic.Bool   // WriteMessages blocks until Close
	gate     chan struct{} // when set, each WriteMessages waits for one token (or Close)
	autoPong atomic.Bool   // answer server pings like a real client

	mu      sync.Mutex
	events  []*Event
	batches []int // len of each WriteMessages call
}

var _ Conn = (*fakeConn)(nil)

func newFakeConn(t testing.TB) *fakeConn {
	c := &fakeConn{t: t, in: make(chan []byte, 1024), hup: make(chan struct{}), closed: make(chan struct{})}
	c.autoPong.Store(true)
	return c
}

func (c *fakeConn) ReadMessage() ([]byte, error) {
	select {
	case p := <-c.in:
		return p, nil
	case <-c.hup:
		return nil, io.EOF
	case <-c.closed:
		return nil, net.ErrClosed
	}
}

func (c *fakeConn) WriteMessages(msgs [][]byte) error {
	if c.stall.Load() {
		<-c.closed
		return net.ErrClosed
	}
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-c.closed:
			return net.ErrClosed
		}
	}
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches = append(c.batches, len(msgs))
	for _, m := range msgs {
		if len(m) > MaxPayload {
			c.t.Errorf("event of %d bytes, over MaxPayload", len(m))
		}
		e, err := DecodeEvent(m)
		if err != nil {
			c.t.Errorf("hub wrote an event its own decoder rejects: %v: %s", err, m)
			continue
		}
		c.events = append(c.events, e)
		if e.Type == TypePing && c.autoPong.Load() {
			p, _ := EncodeRequest(&Request{Type: TypePong, ID: e.ID})
			c.in <- p
		}
	}
	return nil
}

func (c *fakeConn) Close() error {
	c.closes.Add(1)
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// harness runs a hub inside a synctest bubble and stops it, and every
// session, when the test ends.
type harness struct {
	t       *testing.T
	h       *Hub
	clients []*client
	logs    *bytes.Buffer
}

func newHarness(t *testing.T, cfg *Config) *harness {
	t.Helper()
	if cfg == nil {
		cfg = &Config{}
	}
	hs := &harness{t: t, logs: new(bytes.Buffer)}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: hs.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	hs.h = NewHub(cfg)
	t.Cleanup(func() {
		hs.h.Close()
		for _, c := range hs.clients {
			<-c.done
		}
	})
	return hs
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// client is the test's side of one session.
type client struct {
	t      *testing.T
	name   string
	conn   *fakeConn
	done   chan struct{}
	err    error // Serve's result, valid once done is closed
	nextID int
	seen   int // events already returned by take
}

// connect starts a session without saying hello.
func (hs *harness) connect(name string, admin bool) *client {
	return hs.connectConn(name, admin, newFakeConn(hs.t))
}

func (hs *harness) connectConn(name string, admin bool, conn *fakeConn) *client {
	c := &client{t: hs.t, name: name, conn: conn, done: make(chan struct{})}
	hs.clients = append(hs.clients, c)
	go func() {
		defer close(c.done)
		c.err = hs.h.Serve(context.Background(), conn, Identity{User: name, Admin: admin})
	}()
	return c
}

// login connects and says hello, and waits until the hub is idle.
func (hs *harness) login(name string, admin bool) *client {
	c := hs.connect(name, admin)
	c.send(&Request{Type: TypeHello, V: 1})
	synctest.Wait()
	return c
}

func (c *client) send(r *Request) {
	c.t.Helper()
	p, err := EncodeRequest(r)
	if err != nil {
		c.t.Fatalf("encode: %v", err)
	}
	c.sendRaw(p)
}

func (c *client) sendRaw(p []byte) {
	select {
	case c.conn.in <- p:
	default:
		c.t.Fatalf("%s: fake input queue full", c.name)
	}
}

// id returns a fresh request id.
func (c *client) id() string {
	c.nextID++
	return fmt.Sprintf("%s-%d", c.name, c.nextID)
}

// say sends text to room with a fresh id and returns the id.
func (c *client) say(room, text string) string {
	id := c.id()
	c.send(&Request{Type: TypeMsg, ID: id, Room: room, Text: text})
	return id
}

// line sends what a user typed in room, as the terminal client would.
func (c *client) line(text, room string) string {
	c.t.Helper()
	r, err := ParseLine(text, room)
	if err != nil {
		c.t.Fatalf("ParseLine(%q): %v", text, err)
	}
	r.ID = c.id()
	c.send(r)
	return r.ID
}

func (c *client) hangup() { c.conn.hupOnce.Do(func() { close(c.conn.hup) }) }

// all returns every event received so far.
func (c *client) all() []*Event {
	c.conn.mu.Lock()
	defer c.conn.mu.Unlock()
	return append([]*Event(nil), c.conn.events...)
}

// take returns the events received since the last take.
func (c *client) take() []*Event {
	all := c.all()
	out := all[c.seen:]
	c.seen = len(all)
	return out
}

func (c *client) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// filters

func ofType(evs []*Event, typ string) []*Event {
	var out []*Event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func ofKind(evs []*Event, kind string) []*Event {
	var out []*Event
	for _, e := range evs {
		if e.Type == TypeMsg && e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// answer returns the ack or error for id, failing if there is not exactly one.
func answer(t *testing.T, evs []*Event, id string) *Event {
	t.Helper()
	var found []*Event
	for _, e := range evs {
		if (e.Type == TypeAck || e.Type == TypeError) && e.ID == id {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one ack or error for %q, got %d in %s", id, len(found), dump(evs))
	}
	return found[0]
}

func mustAck(t *testing.T, evs []*Event, id string) *Event {
	t.Helper()
	e := answer(t, evs, id)
	if e.Type != TypeAck {
		t.Fatalf("request %s: want ack, got error %s: %s", id, e.Code, e.Text)
	}
	return e
}

func mustFail(t *testing.T, evs []*Event, id, code string) *Event {
	t.Helper()
	e := answer(t, evs, id)
	if e.Type != TypeError || e.Code != code {
		t.Fatalf("request %s: want error %s, got %s %s %q", id, code, e.Type, e.Code, e.Text)
	}
	return e
}

func dump(evs []*Event) string {
	var b bytes.Buffer
	for _, e := range evs {
		p, _ := EncodeEvent(e)
		b.Write(p)
		b.WriteByte('\n')
	}
	return b.String()
}
