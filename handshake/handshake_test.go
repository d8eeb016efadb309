package handshake

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

func TestHandshakeEachGroup(t *testing.T) {
	for _, g := range allGroups {
		t.Run(g.String(), func(t *testing.T) {
			v := newVerifier()
			ccfg, asked := clientConfig("alice", "correct horse")
			ccfg.Groups = []Group{g}
			cc, sc := tcpPipe(t)
			c, s := handshakePair(t, cc, sc, ccfg, serverConfig(v))
			if c.err != nil || s.err != nil {
				t.Fatalf("client: %v, server: %v", c.err, s.err)
			}
			if c.s.SessionID != s.s.SessionID {
				t.Error("session ids differ")
			}
			if c.s.SessionID == [32]byte{} {
				t.Error("zero session id")
			}
			if c.s.Group != g || s.s.Group != g {
				t.Errorf("groups %v/%v, want %v", c.s.Group, s.s.Group, g)
			}
			if s.s.User != "alice" || c.s.User != "alice" {
				t.Errorf("users %q/%q", c.s.User, s.s.User)
			}
			if !bytes.Equal(c.s.HostKey, testHostKey("server").Public().(ed25519.PublicKey)) {
				t.Error("client session has the wrong host key")
			}
			if *asked != 1 {
				t.Errorf("password asked %d times", *asked)
			}
			msg := []byte("hello over " + g.String())
			errc := make(chan error, 1)
			go func() { errc <- c.s.WriteMessage(msg) }()
			got, err := s.s.ReadMessage()
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("ReadMessage = %q, %v", got, err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestServerPrefersClientOrder(t *testing.T) {
	ccfg, _ := clientConfig("alice", "correct horse")
	ccfg.Groups = []Group{GroupX25519, GroupMLKEM768X25519}
	scfg := serverConfig(newVerifier())
	cc, sc := tcpPipe(t)
	c, s := handshakePair(t, cc, sc, ccfg, scfg)
	if c.err != nil || s.err != nil {
		t.Fatalf("client: %v, server: %v", c.err, s.err)
	}
	if c.s.Group != GroupX25519 {
		t.Errorf("group %v, want x25519 (the client's first choice)", c.s.Group)
	}

	// A server that does not allow the first choice takes the next.
	ccfg.Groups = []Group{GroupX25519, GroupMLKEM768X25519}
	scfg.Groups = []Group{GroupMLKEM768X25519}
	cc, sc = tcpPipe(t)
	c, s = handshakePair(t, cc, sc, ccfg, scfg)
	if c.err != nil || s.err != nil {
		t.Fatalf("client: %v, server: %v", c.err, s.err)
	}
	if c.s.Group != GroupMLKEM768X25519 {
		t.Errorf("group %v, want mlkem768x25519", c.s.Group)
	}
}

func TestDefaultGroupIsHybrid(t *testing.T) {
	ccfg, _ := clientConfig("bob", "hunter2")
	cc, sc := tcpPipe(t)
	c, s := handshakePair(t, cc, sc, ccfg, serverConfig(newVerifier()))
	if c.err != nil || s.err != nil {
		t.Fatalf("client: %v, server: %v", c.err, s.err)
	}
	if c.s.Group != GroupMLKEM768X25519 {
		t.Errorf("default group %v", c.s.Group)
	}
}

func TestNoCommonGroup(t *testing.T) {
	ccfg, asked := clientConfig("alice", "correct horse")
	ccfg.Groups = []Group{GroupFFDHE3072}
	scfg := serverConfig(newVerifier())
	scfg.Groups = []Group{GroupX25519}
	cc, sc := tcpPipe(t)
	c, s := handshakePair(t, cc, sc, ccfg, scfg)
	var ae *AbortError
	if !errors.As(c.err, &ae) || ae.Code != AbortNoCommonAlgorithm {
		t.Fatalf("client error %v, want ABORT 0x02", c.err)
	}
	if s.err == nil || *asked != 0 {
		t.Fatalf("server error %v, password asked %d times", s.err, *asked)
	}
}

// TestServerDefaultGroups checks that a server left to its defaults does
// not let an unauthenticated client choose ffdhe3072 (variable-time and
// about 12 times the CPU of x25519), and that listing it still allows it.
func TestServerDefaultGroups(t *testing.T) {
	for _, tc := range []struct {
		name   string
		server []Group
		client []Group
		want   Group // 0: no common group
	}{
		{"default refuses ffdhe3072", nil, []Group{GroupFFDHE3072}, 0},
		{"default takes mlkem768x25519", nil, []Group{GroupFFDHE3072, GroupMLKEM768X25519}, GroupMLKEM768X25519},
		{"default takes x25519", nil, []Group{GroupFFDHE3072, GroupX25519}, GroupX25519},
		{"listed ffdhe3072", []Group{GroupX25519, GroupFFDHE3072}, []Group{GroupFFDHE3072}, GroupFFDHE3072},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ccfg, asked := clientConfig("alice", "correct horse")
			ccfg.Groups = tc.client
			scfg := serverConfig(newVerifier())
			scfg.Groups = tc.server
			cc, sc := tcpPipe(t)
			c, s := handshakePair(t, cc, sc, ccfg, scfg)
			if tc.want == 0 {
				var ae *AbortError
				if !errors.As(c.err, &ae) || ae.Code != AbortNoCommonAlgorithm {
					t.Fatalf("client error %v, want ABORT 0x02", c.err)
				}
				if s.err == nil || *asked != 0 {
					t.Fatalf("server error %v, password asked %d times", s.err, *asked)
				}
				return
			}
			if c.err != nil || s.err != nil {
				t.Fatalf("client: %v, server: %v", c.err, s.err)
			}
			if c.s.Group != tc.want || s.s.Group != tc.want {
				t.Errorf("negotiated %v/%v, want %v", c.s.Group, s.s.Group, tc.want)
			}
		})
	}
}

// bindingConn gives a connection a channel binding value, as the QUIC
// adapter does.
type bindingConn struct {
	net.Conn
	cb  []byte
	err error
}

func (c *bindingConn) ChannelBinding() ([]byte, error) { return c.cb, c.err }

func TestChannelBinding(t *testing.T) {
	cbA := bytes.Repeat([]byte{0xA}, 32)
	cbB := bytes.Repeat([]byte{0xB}, 32)
	t.Run("same binding", func(t *testing.T) {
		cc, sc := tcpPipe(t)
		ccfg, _ := clientConfig("alice", "correct horse")
		c, s := handshakePair(t, &bindingConn{Conn: cc, cb: cbA}, &bindingConn{Conn: sc, cb: cbA}, ccfg, serverConfig(newVerifier()))
		if c.err != nil || s.err != nil {
			t.Fatalf("client: %v, server: %v", c.err, s.err)
		}
	})
	// A relay that terminates two outer connections (two bindings) and
	// splices the inner streams is caught by the signature.
	for name, pair := range map[string][2][]byte{"different": {cbA, cbB}, "client only": {cbA, nil}, "server only": {nil, cbB}} {
		t.Run(name, func(t *testing.T) {
			cc, sc := tcpPipe(t)
			ccfg, asked := clientConfig("alice", "correct horse")
			c, s := handshakePair(t, &bindingConn{Conn: cc, cb: pair[0]}, &bindingConn{Conn: sc, cb: pair[1]}, ccfg, serverConfig(newVerifier()))
			if !errors.Is(c.err, errBadSignature) || s.err == nil || *asked != 0 {
				t.Fatalf("client: %v, server: %v, asked %d", c.err, s.err, *asked)
			}
		})
	}
	t.Run("binding error", func(t *testing.T) {
		cc, sc := tcpPipe(t)
		ccfg, _ := clientConfig("alice", "correct horse")
		boom := errors.New("no exporter")
		c, _ := handshakePair(t, &bindingConn{Conn: cc, err: boom}, sc, ccfg, serverConfig(newVerifier()))
		if !errors.Is(c.err, boom) {
			t.Fatalf("client: %v", c.err)
		}
	})
	t.Run("too long", func(t *testing.T) {
		cc, sc := tcpPipe(t)
		ccfg, _ := clientConfig("alice", "correct horse")
		c, _ := handshakePair(t, &bindingConn{Conn: cc, cb: make([]byte, 256)}, sc, ccfg, serverConfig(newVerifier()))
		if c.err == nil {
			t.Fatal("256-byte binding accepted")
		}
	})
}

func TestConfigValidation(t *testing.T) {
	good, _ := clientConfig("alice", "x")
	for name, edit := range map[string]func(*ClientConfig){
		"no host key callback": func(c *ClientConfig) { c.HostKeyCallback = nil },
		"no password func":     func(c *ClientConfig) { c.Password = nil },
		"bad user":             func(c *ClientConfig) { c.User = "Alice" },
		"long user":            func(c *ClientConfig) { c.User = strings.Repeat("a", 33) },
		"no transport":         func(c *ClientConfig) { c.Transport = "" },
		"unknown group":        func(c *ClientConfig) { c.Groups = []Group{0x0017} },
		"repeated group":       func(c *ClientConfig) { c.Groups = []Group{GroupX25519, GroupX25519} },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := *good
			edit(&cfg)
			cc, sc := net.Pipe()
			defer sc.Close()
			if _, err := Client(t.Context(), cc, &cfg); err == nil || !strings.HasPrefix(err.Error(), "handshake: ") {
				t.Fatalf("got %v", err)
			}
			if _, err := cc.Write([]byte{1}); err == nil {
				t.Error("connection left open")
			}
		})
	}
	for name, edit := range map[string]func(*ServerConfig){
		"no host key":   func(c *ServerConfig) { c.HostKey = nil },
		"no verifier":   func(c *ServerConfig) { c.Verifier = nil },
		"no transport":  func(c *ServerConfig) { c.Transport = "" },
		"unknown group": func(c *ServerConfig) { c.Groups = []Group{0x0017} },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := serverConfig(newVerifier())
			edit(cfg)
			cc, sc := net.Pipe()
			defer cc.Close()
			if _, err := Server(t.Context(), sc, cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestPasswordCallbackError(t *testing.T) {
	ccfg, _ := clientConfig("alice") // no passwords: the callback fails
	v := newVerifier()
	cc, sc := tcpPipe(t)
	c, s := handshakePair(t, cc, sc, ccfg, serverConfig(v))
	if c.err == nil || !strings.Contains(c.err.Error(), "no more passwords") {
		t.Errorf("client: %v", c.err)
	}
	// The client ended the session with CLOSE; the server saw a clean end.
	if !errors.Is(s.err, io.EOF) || v.callCount() != 0 {
		t.Errorf("server: %v (verifier calls %d)", s.err, v.callCount())
	}
}

func TestUnsendablePassword(t *testing.T) {
	for name, pw := range map[string]string{"empty": "", "not utf-8": "\xff\xfe", "too long": strings.Repeat("p", 1025)} {
		t.Run(name, func(t *testing.T) {
			ccfg, _ := clientConfig("alice", pw)
			v := newVerifier()
			cc, sc := tcpPipe(t)
			c, s := handshakePair(t, cc, sc, ccfg, serverConfig(v))
			if c.err == nil || !strings.Contains(c.err.Error(), "password") {
				t.Errorf("client: %v", c.err)
			}
			if !errors.Is(s.err, io.EOF) || v.callCount() != 0 {
				t.Errorf("server: %v (verifier calls %d)", s.err, v.callCount())
			}
		})
	}
}

// Negotiated names the group of a handshake that fails after it was
// chosen (here at the password), and is not called when none was chosen.
func TestNegotiatedHook(t *testing.T) {
	var got []Group
	scfg := serverConfig(newVerifier())
	scfg.MaxAuthTries = 1
	scfg.Negotiated = func(g Group) { got = append(got, g) }
	ccfg, _ := clientConfig("alice", "wrong")
	ccfg.Groups = []Group{GroupX25519}
	cc, sc := tcpPipe(t)
	_, s := handshakePair(t, cc, sc, ccfg, scfg)
	if !errors.Is(s.err, ErrAuthFailed) {
		t.Fatalf("server error %v, want ErrAuthFailed", s.err)
	}
	if len(got) != 1 || got[0] != GroupX25519 {
		t.Fatalf("Negotiated saw %v, want [x25519]", got)
	}

	got = nil
	ccfg.Groups = []Group{GroupFFDHE3072}
	scfg.Groups = []Group{GroupX25519}
	cc, sc = tcpPipe(t)
	if _, s := handshakePair(t, cc, sc, ccfg, scfg); s.err == nil {
		t.Fatal("handshake without a common group succeeded")
	}
	if len(got) != 0 {
		t.Fatalf("Negotiated saw %v without a common group", got)
	}
}
