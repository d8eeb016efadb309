//go:build unix

package main

// A server that cannot prove who it is: the client must exit 4 with a
// message saying so, never retry, and never record its host key. The
// hostile server is a relay on loopback in front of a real securechat
// serve that tampers with what the server sends, as an attacker in the
// middle would. TCP only: the relay speaks TCP, and the checks run above
// the transport.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"securechat/client"
	"securechat/handshake"
	"securechat/transport"
)

// How the relay tampers with the server's first messages.
const (
	passThrough       = ""
	flipSignature     = "signature"      // last byte of the SERVER_HELLO signature
	unofferedGroup    = "group"          // SERVER_HELLO says ffdhe3072, which the client did not offer
	flipFinished      = "finished"       // last byte of the first record (the server's FINISHED)
	serverHelloHeader = 4                // frame type and u24 length
	groupOffset       = 4 + 2 + 32       // header, version, server_random
	recordHeader      = 5                // record type and u32 length
	recordTag         = 32               // HMAC-SHA-256
	ffdhe3072ID       = uint16(0x0101)   // PROTOCOL.md §6
	maxRecordBody     = 16 + 16384 + 256 // generous bound on IV, ciphertext and padding
)

type hostileRelay struct {
	t      *testing.T
	ln     net.Listener
	target string
	addr   string

	mu    sync.Mutex
	mode  string
	conns int
	live  []net.Conn
}

func startHostileRelay(t *testing.T, target, mode string) *hostileRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &hostileRelay{t: t, ln: ln, target: target, addr: ln.Addr().String(), mode: mode}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		r.cut()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns++
			mode := r.mode
			r.live = append(r.live, c, up)
			r.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer wg.Done(); r.toClient(c, up, mode); c.Close() }()
		}
	}()
	return r
}

// toClient relays the server's bytes, tampering as mode says.
func (r *hostileRelay) toClient(c, up net.Conn, mode string) {
	if mode != passThrough {
		hdr := make([]byte, serverHelloHeader)
		if _, err := io.ReadFull(up, hdr); err != nil {
			return
		}
		n := int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
		frame := append(hdr, make([]byte, n)...)
		if _, err := io.ReadFull(up, frame[serverHelloHeader:]); err != nil {
			return
		}
		switch mode {
		case flipSignature:
			frame[len(frame)-1] ^= 1
		case unofferedGroup:
			binary.BigEndian.PutUint16(frame[groupOffset:], ffdhe3072ID)
		}
		if _, err := c.Write(frame); err != nil {
			return
		}
		if mode == flipFinished {
			rh := make([]byte, recordHeader)
			if _, err := io.ReadFull(up, rh); err != nil {
				return
			}
			n := int(rh[1])<<24 | int(rh[2])<<16 | int(rh[3])<<8 | int(rh[4])
			if n > maxRecordBody {
				return
			}
			rec := append(rh, make([]byte, n+recordTag)...)
			if _, err := io.ReadFull(up, rec[recordHeader:]); err != nil {
				return
			}
			rec[len(rec)-1] ^= 1
			if _, err := c.Write(rec); err != nil {
				return
			}
		}
	}
	io.Copy(c, up)
}

func (r *hostileRelay) setMode(mode string) {
	r.mu.Lock()
	r.mode = mode
	r.mu.Unlock()
}

// cut closes every relayed connection, as a network failure would.
func (r *hostileRelay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.live {
		c.Close()
	}
	r.live = nil
}

func (r *hostileRelay) connections() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns
}

// checkNotAuthenticated checks a client that met a hostile server: exit
// 4, the message, no retry, and known_hosts as it was (wantKH; "" for
// missing or empty) with "Permanently added" printed addedNotes times.
func checkNotAuthenticated(t *testing.T, p *proc, r *hostileRelay, kh, wantKH string, wantConns, addedNotes int) {
	t.Helper()
	p.expectExit(exitHostKey)
	msg := p.stderr()
	if n := strings.Count(msg, "Permanently added"); n != addedNotes {
		t.Errorf("\"Permanently added\" printed %d times, want %d:\n%s", n, addedNotes, msg)
	}
	if !strings.Contains(msg, "securechat: error: the server at "+r.addr+" could not be authenticated: ") {
		t.Errorf("the message does not say the server could not be authenticated:\n%s", msg)
	}
	if n := r.connections(); n != wantConns {
		t.Errorf("the client connected %d times, want %d: it must not retry", n, wantConns)
	}
	if b, _ := os.ReadFile(kh); string(b) != wantKH {
		t.Errorf("known_hosts is %q, want %q", b, wantKH)
	}
}

// TestE2EServerNotAuthenticated: a bad signature, an unoffered group and a
// bad FINISHED each end a script client with exit 4 and no retry, and
// leave known_hosts untouched under accept-new; the real server is then
// accepted and recorded.
func TestE2EServerNotAuthenticated(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	s := e.serve("tcp", "127.0.0.1:0", filepath.Join(e.dir, "state"))
	for _, mode := range []string{flipSignature, unofferedGroup, flipFinished} {
		t.Run(mode, func(t *testing.T) {
			r := startHostileRelay(t, s.addr, mode)
			kh := e.knownHosts()
			p := e.start("alice", "hello\n", "connect", "--transport", "tcp", "--user", "alice",
				"--password-file", e.passwordFile("alice"), "--known-hosts", kh,
				"--host-key-check", "accept-new", r.addr)
			checkNotAuthenticated(t, p, r, kh, "", 1, 0)
			if p.countLines("logged in") != 0 {
				t.Error("logged in anyway")
			}

			// The real server at the same address, with the same known_hosts.
			r.setMode(passThrough)
			p = e.start("alice", "hello\n", "connect", "--transport", "tcp", "--user", "alice",
				"--password-file", e.passwordFile("alice"), "--known-hosts", kh,
				"--host-key-check", "accept-new", r.addr)
			p.expectExit(exitOK)
			if n := strings.Count(p.stderr(), "Warning: Permanently added '"+r.addr+"' (ED25519)"); n != 1 {
				t.Errorf("\"Permanently added\" printed %d times, want once:\n%s", n, p.stderr())
			}
			k, err := handshake.LoadKnownHosts(kh)
			if err != nil || len(k.Hosts) != 1 || k.Hosts[0].HostPort != r.addr ||
				handshake.Fingerprint(k.Hosts[0].Key) != s.fingerprint {
				t.Errorf("known_hosts after the real server: %+v, %v; want %s with %s", k, err, r.addr, s.fingerprint)
			}
		})
	}
}

// TestE2EReconnectNotAuthenticated: a script client whose connection drops
// reconnects, but when the reconnection meets a server that cannot be
// authenticated it exits 4 at once instead of trying again.
func TestE2EReconnectNotAuthenticated(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	s := e.serve("tcp", "127.0.0.1:0", filepath.Join(e.dir, "state"))
	r := startHostileRelay(t, s.addr, passThrough)
	kh := e.knownHosts()
	p := e.startHeld("alice", "connect", "--transport", "tcp", "--user", "alice",
		"--password-file", e.passwordFile("alice"), "--known-hosts", kh,
		"--host-key-check", "accept-new", r.addr)
	p.expect("[system] logged in as alice")
	p.waitStderr("Permanently added")

	recorded, err := os.ReadFile(kh)
	if err != nil || len(recorded) == 0 {
		t.Fatalf("known_hosts after the first login: %q, %v", recorded, err)
	}

	r.setMode(flipSignature)
	r.cut()
	p.waitStderr("reconnecting")
	checkNotAuthenticated(t, p, r, kh, string(recorded), 2, 1)
}

// TestConnectAskYesRecordsOnlyAfterFinished drives the client's dial in
// process with the ask policy answered yes: a server whose FINISHED does
// not verify (so the question is reached) is refused with exit 4, nothing
// is recorded and "Permanently added" is not printed; the real server is
// then recorded and the note printed once.
func TestConnectAskYesRecordsOnlyAfterFinished(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	s := e.serve("tcp", "127.0.0.1:0", filepath.Join(e.dir, "state"))
	tcp, err := transport.Lookup("tcp")
	if err != nil {
		t.Fatal(err)
	}
	kh := e.knownHosts()
	initial := "# mine\n"
	if err := os.WriteFile(kh, []byte(initial), 0o600); err != nil {
		t.Fatal(err)
	}
	pw := []byte(e2ePassword("alice"))
	config := func(addr string, notes io.Writer) (*client.Config, *[]string) {
		var asked []string
		ask := func(_, fp string) (bool, error) {
			asked = append(asked, fp)
			return true, nil
		}
		check, record, err := client.HostKeyChecks(kh, addr, handshake.PolicyAsk, "", ask, notes)
		if err != nil {
			t.Fatal(err)
		}
		return &client.Config{
			Addr: addr, Transport: tcp, User: "alice", HostKey: check, HostKeyVerified: record,
			Password: func(int) ([]byte, error) { return bytes.Clone(pw), nil },
		}, &asked
	}

	r := startHostileRelay(t, s.addr, flipFinished)
	var notes bytes.Buffer
	cfg, asked := config(r.addr, &notes)
	_, err = client.Dial(context.Background(), cfg)
	if exitCode(err) != exitHostKey || !errors.Is(err, handshake.ErrServerNotAuthenticated) ||
		!errors.Is(err, client.ErrServerNotAuthenticated) || !strings.Contains(err.Error(), "could not be authenticated") {
		t.Fatalf("dial through the hostile relay: %v", err)
	}
	if len(*asked) != 1 || (*asked)[0] != s.fingerprint {
		t.Errorf("asked about %v, want once about %s", *asked, s.fingerprint)
	}
	if b, _ := os.ReadFile(kh); string(b) != initial {
		t.Errorf("known_hosts changed: %q", b)
	}
	if notes.Len() != 0 {
		t.Errorf("printed %q", notes.String())
	}

	cfg, _ = config(s.addr, &notes)
	l, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("dial the real server: %v", err)
	}
	l.Close()
	if got, want := notes.String(), client.HostKeyAddedMessage(s.addr); got != want {
		t.Errorf("printed %q, want %q", got, want)
	}
	want := initial + handshake.FormatKnownHost(s.addr, l.HostKey()) + "\n"
	if b, _ := os.ReadFile(kh); string(b) != want {
		t.Errorf("known_hosts %q, want %q", b, want)
	}
}
