package handshake

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"securechat/cipher"
)

// rawClient is a client assembled from the package internals, so that tests
// can deviate from the protocol at any step.
type rawClient struct {
	c       net.Conn
	prefix  []byte
	shares  []clientKeyShare
	ch      *clientHello
	chFrame []byte
	sh      *serverHello
	shFrame []byte
	th      [32]byte
	keys    *sessionKeys
	conn    *cipher.Conn
}

// newRawHello builds a valid CLIENT_HELLO offering groups (with shares) for
// transport "tcp".
func newRawHello(t testing.TB, groups ...Group) (*clientHello, []clientKeyShare) {
	t.Helper()
	ch := &clientHello{
		versions:  []uint16{versionV1},
		transport: "tcp",
		groups:    groups,
		sigAlgs:   []uint16{sigAlgEd25519},
	}
	rand.Read(ch.random[:])
	var shares []clientKeyShare
	for _, g := range groups {
		s, err := newClientKeyShare(g, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, s)
		ch.keyShares = append(ch.keyShares, keyShare{g, s.public()})
	}
	return ch, shares
}

// sendRawHello sends ch (after mutate, if any) as the first frame on c.
func sendRawHello(t testing.TB, c net.Conn, ch *clientHello, shares []clientKeyShare) *rawClient {
	t.Helper()
	frame, err := ch.marshal()
	if err != nil {
		t.Fatal(err)
	}
	prefix, _ := transcriptPrefixBytes(nil)
	r := &rawClient{c: c, prefix: prefix, shares: shares, ch: ch, chFrame: frame}
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	return r
}

// readServerHello returns *AbortError for ABORT.
func (r *rawClient) readServerHello() error {
	typ, frame, err := readFrame(r.c, frameServerHello, frameAbort)
	if err != nil {
		return err
	}
	if typ == frameAbort {
		code, err := parseAbort(frame)
		if err != nil {
			return err
		}
		return &AbortError{Code: code}
	}
	r.sh, err = parseServerHello(frame)
	r.shFrame = frame
	return err
}

// establish checks the signature, derives the keys and installs the record
// layer, like the real client.
func (r *rawClient) establish() error {
	if err := verifyServerHello(ed25519.PublicKey(r.sh.hostKey), r.prefix, r.chFrame, r.shFrame, r.sh.signature); err != nil {
		return err
	}
	var share clientKeyShare
	for _, s := range r.shares {
		if s.group() == r.sh.group {
			share = s
		}
	}
	if share == nil {
		return errors.New("server chose an unoffered group")
	}
	ss, err := share.finish(r.sh.keyShare)
	if err != nil {
		return err
	}
	r.th = transcriptHash(r.prefix, r.chFrame, r.shFrame)
	r.keys = deriveKeys(ss, r.th)
	r.conn = cipher.New(r.c, r.keys.c2s, r.keys.s2c, nil)
	return nil
}

func (r *rawClient) readServerFinished() error {
	typ, p, err := r.conn.ReadRecord()
	if err != nil {
		return err
	}
	if typ != cipher.TypeFinished || string(p) != string(finishedMAC(r.keys.finS, r.th)) {
		return errors.New("bad server finished")
	}
	return nil
}

func (r *rawClient) clientFinished() []byte { return finishedMAC(r.keys.finC, r.th) }

// rawLogin runs a raw client through the handshake up to WAIT_AUTH.
func rawLogin(t testing.TB, c net.Conn, g Group) *rawClient {
	t.Helper()
	ch, shares := newRawHello(t, g)
	r := sendRawHello(t, c, ch, shares)
	if err := r.readServerHello(); err != nil {
		t.Fatal(err)
	}
	if err := r.establish(); err != nil {
		t.Fatal(err)
	}
	if err := r.readServerFinished(); err != nil {
		t.Fatal(err)
	}
	if err := r.conn.WriteRecord(cipher.TypeFinished, r.clientFinished()); err != nil {
		t.Fatal(err)
	}
	return r
}

// mitm relays between a client and a server and may rewrite the cleartext
// frames and the first server record.
type mitm struct {
	toServer       func(frame []byte) [][]byte // CLIENT_HELLO -> frames to send on
	toClient       func(frame []byte) [][]byte // SERVER_HELLO or ABORT -> frames to send on
	toClientRecord func(rec []byte) []byte     // first server record

	mu      sync.Mutex
	helloes int // CLIENT_HELLO frames seen
}

func (m *mitm) clientHellos() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.helloes
}

// startMITM returns the connection end the client should use and the one
// the server should use; the relay runs until either side closes.
func startMITM(t testing.TB, m *mitm) (clientEnd, serverEnd net.Conn) {
	t.Helper()
	clientEnd, fromClient := tcpPipe(t)
	toServer, serverEnd := tcpPipe(t)
	go func() {
		defer fromClient.Close()
		defer toServer.Close()
		_, ch, err := readFrame(fromClient, frameClientHello)
		if err != nil {
			return
		}
		m.mu.Lock()
		m.helloes++
		m.mu.Unlock()
		frames := [][]byte{ch}
		if m.toServer != nil {
			frames = m.toServer(ch)
		}
		for _, f := range frames {
			if _, err := toServer.Write(f); err != nil {
				return
			}
		}
		_, sh, err := readFrame(toServer, frameServerHello, frameAbort)
		if err != nil {
			return
		}
		frames = [][]byte{sh}
		if m.toClient != nil {
			frames = m.toClient(sh)
		}
		for _, f := range frames {
			if _, err := fromClient.Write(f); err != nil {
				return
			}
		}
		if m.toClientRecord != nil {
			rec, err := readRawRecord(toServer)
			if err != nil {
				return
			}
			if _, err := fromClient.Write(m.toClientRecord(rec)); err != nil {
				return
			}
		}
		done := make(chan struct{}, 2)
		go func() { io.Copy(toServer, fromClient); done <- struct{}{} }()
		go func() { io.Copy(fromClient, toServer); done <- struct{}{} }()
		<-done
	}()
	return clientEnd, serverEnd
}

// readRawRecord reads one record's bytes without opening it.
func readRawRecord(r io.Reader) ([]byte, error) {
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	n := int(hdr[1])<<24 | int(hdr[2])<<16 | int(hdr[3])<<8 | int(hdr[4])
	if n > 16416 {
		return nil, errors.New("record too long")
	}
	rec := make([]byte, 5+n+32)
	copy(rec, hdr)
	_, err := io.ReadFull(r, rec[5:])
	return rec, err
}

// rewriteHello parses a CLIENT_HELLO frame, lets edit change it and
// re-encodes it.
func rewriteHello(t testing.TB, edit func(*clientHello)) func([]byte) [][]byte {
	return func(frame []byte) [][]byte {
		ch, err := parseClientHello(frame)
		if err != nil {
			t.Error(err)
			return nil
		}
		edit(ch)
		out, err := ch.marshal()
		if err != nil {
			t.Error(err)
			return nil
		}
		return [][]byte{out}
	}
}

func rewriteServerHello(t testing.TB, edit func(*serverHello)) func([]byte) [][]byte {
	return func(frame []byte) [][]byte {
		sh, err := parseServerHello(frame)
		if err != nil {
			t.Error(err)
			return nil
		}
		edit(sh)
		out, err := sh.marshal()
		if err != nil {
			t.Error(err)
			return nil
		}
		return [][]byte{out}
	}
}
