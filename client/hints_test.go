package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"securechat/transport"
)

// pointedAt dials addr over the transport named tr with a client that
// would accept any host key, and returns the error.
func pointedAt(t *testing.T, ctx context.Context, tr, addr string) error {
	t.Helper()
	trn, err := transport.Lookup(tr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Dial(ctx, &Config{Addr: addr, Transport: trn, User: "alice",
		HostKey:  func(ed25519.PublicKey) error { return nil },
		Password: func(int) ([]byte, error) { return []byte("password"), nil }})
	if err == nil {
		t.Fatal("Dial succeeded")
	}
	return err
}

// TestHintNotSecurechat: a port that answers with another protocol (here
// the start of an HTTP response) gets a hint that names the likely
// mistake instead of only "unexpected frame type".
func TestHintNotSecurechat(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "<!DOCTYPE html>\n<html></html>\n")
		io.Copy(io.Discard, c)
	}()
	err = pointedAt(t, context.Background(), "tcp", ln.Addr().String())
	if h := Hint(err); !strings.Contains(h, "this does not look like a securechat server") {
		t.Errorf("error %q has hint %q, want one saying it is not a securechat server", err, h)
	}
}

// TestHintQUICAgainstTCP: a QUIC client at a port where no QUIC server
// answers (a TCP server's port) is asked whether the server uses TCP.
func TestHintQUICAgainstTCP(t *testing.T) {
	t.Parallel()
	// A UDP socket that never answers stands for the TCP server's port.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = pointedAt(t, ctx, "quic", pc.LocalAddr().String())
	if h := Hint(err); !strings.Contains(h, "is the server using --transport tcp?") {
		t.Errorf("error %q has hint %q, want one asking about --transport tcp", err, h)
	}
	if !errors.Is(err, ErrConnectionLost) {
		t.Errorf("error %q is not ErrConnectionLost", err)
	}
}

// TestHintTCPRefused: a TCP client refused where a QUIC server may listen
// is reminded of --transport quic.
func TestHintTCPRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = pointedAt(t, context.Background(), "tcp", addr)
	if h := Hint(err); !strings.Contains(h, "--transport quic") {
		t.Errorf("error %q has hint %q, want one naming --transport quic", err, h)
	}
}
