// Package chattest gives tests that drive a chat hub a session connection
// without a network.
//
// Its one rule: test support only; no package outside tests imports it.
package chattest

import (
	"io"
	"net"
	"sync"

	"securechat/chat"
)

// Pipe is a [chat.Conn] whose other end is two channels: a test puts
// encoded requests on In (closing it is the client going away) and reads
// the hub's events, decoded, from Events.
type Pipe struct {
	In     chan []byte
	Events chan *chat.Event
	closed chan struct{}
	once   sync.Once
}

// NewPipe returns a Pipe with room for 64 requests and 4096 events, so
// that a test reading its events late does not hold up the hub.
func NewPipe() *Pipe {
	return &Pipe{In: make(chan []byte, 64), Events: make(chan *chat.Event, 4096), closed: make(chan struct{})}
}

func (c *Pipe) ReadMessage() ([]byte, error) {
	select {
	case p, ok := <-c.In:
		if !ok {
			return nil, io.EOF
		}
		return p, nil
	case <-c.closed:
		return nil, net.ErrClosed
	}
}

func (c *Pipe) WriteMessages(msgs [][]byte) error {
	for _, m := range msgs {
		e, err := chat.DecodeEvent(m)
		if err != nil {
			return err
		}
		select {
		case c.Events <- e:
		case <-c.closed:
			return net.ErrClosed
		}
	}
	return nil
}

// Close ends the connection as a broken network would.
func (c *Pipe) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}
