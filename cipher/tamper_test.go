package cipher

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
)

// captureSender returns an established client-side Conn whose records are
// collected in the returned buffer instead of being sent.
func captureSender(t testing.TB, send, recv []byte, opts *Options) (*Conn, *readerConn) {
	t.Helper()
	rc := newReaderConn(nil)
	c := New(rc, send, recv, opts)
	c.SetEstablished()
	return c, rc
}

// splitRecords cuts a stream of well-formed records at their headers.
func splitRecords(t testing.TB, stream []byte) [][]byte {
	t.Helper()
	var recs [][]byte
	for len(stream) > 0 {
		if len(stream) < headerLen {
			t.Fatalf("stream ends inside a header")
		}
		n := headerLen + int(binary.BigEndian.Uint32(stream[1:headerLen])) + tagLen
		if n > len(stream) {
			t.Fatalf("stream ends inside a record")
		}
		recs = append(recs, stream[:n:n])
		stream = stream[n:]
	}
	return recs
}

// receiverFor returns a server-side Conn that reads stream and then sees
// end of stream.
func receiverFor(stream []byte, opts *Options, established bool) (*Conn, *readerConn) {
	rc := newReaderConn(bytes.Clone(stream))
	c := New(rc, testS2C, testC2S, opts)
	if established {
		c.SetEstablished()
	}
	return c, rc
}

// sealMessages returns the records of msgs sent client to server.
func sealMessages(t testing.TB, msgs ...string) [][]byte {
	t.Helper()
	c, rc := captureSender(t, testC2S, testS2C, nil)
	for _, m := range msgs {
		if err := c.WriteMessage([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	return splitRecords(t, rc.written.Bytes())
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// expectBad reads from c until an error and checks that it is ErrBadRecord
// after exactly wantGood good records, that nothing was written to the peer
// and that the transport was closed.
func expectBad(t *testing.T, c *Conn, rc *readerConn, wantGood int) {
	t.Helper()
	for i := 0; ; i++ {
		_, _, err := c.ReadRecord()
		if err == nil {
			continue
		}
		if !isBad(err) {
			t.Fatalf("record %d: error %v, want ErrBadRecord", i, err)
		}
		if i != wantGood {
			t.Fatalf("failed at record %d, want %d", i, wantGood)
		}
		break
	}
	if rc.written.Len() != 0 {
		t.Fatalf("%d bytes were written to the peer after a bad record", rc.written.Len())
	}
	if !rc.closed {
		t.Fatal("transport not closed after a bad record")
	}
}

// TestTamperEveryByte flips one bit in every byte of a record, covering every
// bit position, and checks that each result is rejected without decryption.
func TestTamperEveryByte(t *testing.T) {
	rec := sealMessages(t, "a message of some length, spanning several AES blocks: 0123456789")[0]
	// Bytes after the record let a length that grew still be read in full, so
	// the tag check is what rejects it and not the end of stream.
	tail := make([]byte, maxRecordLen)
	rand.Read(tail)

	// Control: the untouched record opens and is decrypted exactly once.
	c, _ := receiverFor(rec, nil, true)
	if _, _, err := c.ReadRecord(); err != nil {
		t.Fatalf("untampered record: %v", err)
	}
	if c.in.decrypts != 1 {
		t.Fatalf("decrypts = %d after a good record, want 1", c.in.decrypts)
	}

	for i := range rec {
		for _, mask := range []byte{1 << (i % 8), 0xff} {
			bad := bytes.Clone(rec)
			bad[i] ^= mask
			c, rc := receiverFor(concat(bad, tail), nil, true)
			expectBad(t, c, rc, 0)
			if c.in.decrypts != 0 {
				t.Fatalf("byte %d mask %#x: a record was decrypted before its tag verified", i, mask)
			}
		}
	}
}

func TestReplayReorderDrop(t *testing.T) {
	recs := sealMessages(t, "zero", "one", "two")
	for _, tc := range []struct {
		name     string
		stream   []byte
		wantGood int
	}{
		{"replay", concat(recs[0], recs[0]), 1},
		{"replay-later", concat(recs[0], recs[1], recs[0]), 2},
		{"reorder", concat(recs[1], recs[0]), 0},
		{"swap-tail", concat(recs[0], recs[2], recs[1]), 1},
		{"drop", concat(recs[0], recs[2]), 1},
		{"drop-first", concat(recs[1], recs[2]), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, rc := receiverFor(tc.stream, nil, true)
			expectBad(t, c, rc, tc.wantGood)
		})
	}
}

// TestReflect feeds a client its own record: keys differ per direction.
func TestReflect(t *testing.T) {
	rec := sealMessages(t, "to the server")[0]
	rc := newReaderConn(rec)
	client := New(rc, testC2S, testS2C, nil)
	client.SetEstablished()
	expectBad(t, client, rc, 0)
}

// TestSplice feeds a record from another connection with other keys.
func TestSplice(t *testing.T) {
	other, orc := captureSender(t, bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), nil)
	if err := other.WriteMessage([]byte("elsewhere")); err != nil {
		t.Fatal(err)
	}
	ours := sealMessages(t, "here")
	c, rc := receiverFor(concat(ours[0], orc.written.Bytes()), nil, true)
	expectBad(t, c, rc, 1)
}

func TestTruncation(t *testing.T) {
	recs := sealMessages(t, "zero", "one")
	for _, tc := range []struct {
		name   string
		stream []byte
		good   int
	}{
		{"eof-without-close", concat(recs[0], recs[1]), 2},
		{"empty-stream", nil, 0},
		{"inside-header", concat(recs[0], recs[1][:3]), 1},
		{"after-header", concat(recs[0], recs[1][:headerLen]), 1},
		{"body-cut", concat(recs[0], recs[1][:len(recs[1])-1]), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := receiverFor(tc.stream, nil, true)
			for i := 0; i < tc.good; i++ {
				if _, err := c.ReadMessage(); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
			}
			_, err := c.ReadMessage()
			if !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
				t.Fatalf("got %v, want ErrTruncated", err)
			}
			if _, err := c.Read(make([]byte, 10)); !errors.Is(err, ErrTruncated) {
				t.Fatalf("second read: %v, want ErrTruncated again", err)
			}
		})
	}
}

// TestBadLengthHeaders checks that impossible lengths are refused on the
// header alone: exactly five bytes are consumed.
func TestBadLengthHeaders(t *testing.T) {
	for _, length := range []uint32{0, 16, 31, 33, 47, 48 + 8, 16417, 16432, 1 << 31, 0xffffffff} {
		hdr := []byte{byte(TypeApp), 0, 0, 0, 0}
		binary.BigEndian.PutUint32(hdr[1:], length)
		body := make([]byte, 20000)
		rc := newReaderConn(concat(hdr, body))
		cc := &countingConn{Conn: rc}
		c := New(cc, testS2C, testC2S, nil)
		c.SetEstablished()
		if _, _, err := c.ReadRecord(); !isBad(err) {
			t.Fatalf("length %d: %v, want ErrBadRecord", length, err)
		}
		if cc.read != headerLen {
			t.Fatalf("length %d: %d bytes consumed, want %d", length, cc.read, headerLen)
		}
		if c.in.decrypts != 0 {
			t.Fatalf("length %d: decrypted", length)
		}
	}
	// The extremes that are allowed are read in full (and then fail the tag).
	for _, length := range []uint32{32, 16416} {
		hdr := []byte{byte(TypeApp), 0, 0, 0, 0}
		binary.BigEndian.PutUint32(hdr[1:], length)
		rc := newReaderConn(concat(hdr, make([]byte, 20000)))
		cc := &countingConn{Conn: rc}
		c := New(cc, testS2C, testC2S, nil)
		if _, _, err := c.ReadRecord(); !isBad(err) {
			t.Fatalf("length %d: %v, want ErrBadRecord", length, err)
		}
		if want := headerLen + int(length) + tagLen; cc.read != want {
			t.Fatalf("length %d: %d bytes consumed, want %d", length, cc.read, want)
		}
	}
}

// TestStickyBadRecord: after one bad record a good one fails too, and so do
// writes; the transport is aborted through Abort when it has one.
func TestStickyBadRecord(t *testing.T) {
	recs := sealMessages(t, "zero", "one")
	bad := bytes.Clone(recs[0])
	bad[len(bad)-1] ^= 1
	rc := newReaderConn(concat(bad, recs[0], recs[1]))
	ac := abortConn{rc}
	c := New(ac, testS2C, testC2S, nil)
	c.SetEstablished()
	if _, _, err := c.ReadRecord(); !isBad(err) {
		t.Fatalf("first: %v", err)
	}
	if !rc.aborted {
		t.Fatal("Abort was not called on the transport")
	}
	for i := 0; i < 3; i++ {
		if _, _, err := c.ReadRecord(); !isBad(err) {
			t.Fatalf("later read %d: %v, want ErrBadRecord", i, err)
		}
	}
	if _, err := c.Read(make([]byte, 4)); !isBad(err) {
		t.Fatalf("Read: %v", err)
	}
	if err := c.WriteMessage([]byte("x")); !isBad(err) {
		t.Fatalf("WriteMessage: %v", err)
	}
	if _, err := c.Write([]byte("x")); !isBad(err) {
		t.Fatalf("Write: %v", err)
	}
	if err := c.KeyUpdate(); !isBad(err) {
		t.Fatalf("KeyUpdate: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close after a bad record: %v", err)
	}
	if rc.written.Len() != 0 {
		t.Fatalf("%d bytes written after the bad record", rc.written.Len())
	}
}

// sealRaw seals a record of any type and payload, bypassing WriteRecord's
// checks, as a misbehaving peer could.
func sealRaw(c *Conn, t RecordType, payload []byte) []byte {
	return c.out.seal(nil, t, payload)
}

// TestRecordTypesByState checks which types the record layer itself refuses.
func TestRecordTypesByState(t *testing.T) {
	for _, tc := range []struct {
		name        string
		typ         RecordType
		payload     []byte
		established bool
		ok          bool
	}{
		{"finished-before", TypeFinished, make([]byte, 32), false, true},
		{"auth-before", TypeAuth, []byte{1, 1, 'a', 0, 1, 'p'}, false, true},
		{"auth-result-before", TypeAuthResult, []byte{0}, false, true},
		{"app-before", TypeApp, []byte("hi"), false, false},
		{"key-update-before", TypeKeyUpdate, nil, false, false},
		{"finished-after", TypeFinished, make([]byte, 32), true, false},
		{"auth-after", TypeAuth, []byte{1, 1, 'a', 0, 1, 'p'}, true, false},
		{"auth-result-after", TypeAuthResult, []byte{0}, true, false},
		{"app-after", TypeApp, []byte("hi"), true, true},
		{"key-update-with-payload", TypeKeyUpdate, []byte{0}, true, false},
		{"close-with-payload", TypeClose, []byte{0}, true, false},
		{"finished-31", TypeFinished, make([]byte, 31), false, false},
		{"finished-33", TypeFinished, make([]byte, 33), false, false},
		{"auth-result-2", TypeAuthResult, []byte{2}, false, false},
		{"auth-result-long", TypeAuthResult, []byte{0, 0}, false, false},
		{"auth-result-empty", TypeAuthResult, nil, false, false},
		{"auth-empty", TypeAuth, nil, false, false},
		{"auth-method-only", TypeAuth, []byte{1}, false, false},
		{"auth-user-cut", TypeAuth, []byte{1, 5, 'a'}, false, false},
		{"auth-password-cut", TypeAuth, []byte{1, 1, 'a', 0, 2, 'p'}, false, false},
		{"auth-trailing", TypeAuth, []byte{1, 1, 'a', 0, 1, 'p', 'x'}, false, false},
		{"auth-unknown-method", TypeAuth, []byte{9, 0, 0, 0}, false, true}, // the handshake's to refuse
		{"unknown-0x00", 0x00, nil, true, false},
		{"unknown-0x15", 0x15, nil, false, false},
		{"unknown-0x21", 0x21, []byte("hi"), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sender := New(nil, testC2S, testS2C, nil)
			rec := sealRaw(sender, tc.typ, tc.payload)
			c, rc := receiverFor(rec, nil, tc.established)
			typ, p, err := c.ReadRecord()
			if !tc.ok {
				if !isBad(err) {
					t.Fatalf("got %v %x %v, want ErrBadRecord", typ, p, err)
				}
				if !rc.closed || rc.written.Len() != 0 {
					t.Fatal("bad record did not close silently")
				}
				return
			}
			if err != nil || typ != tc.typ || !bytes.Equal(p, tc.payload) {
				t.Fatalf("got %v %x %v, want %v %x", typ, p, err, tc.typ, tc.payload)
			}
		})
	}
}

// TestBadPaddingAfterMAC seals a correctly tagged record whose plaintext has
// bad PKCS#7 padding: it must be decrypted (the tag is good) and rejected
// with the same error.
func TestBadPaddingAfterMAC(t *testing.T) {
	for _, last := range []byte{0, 17, 255, 2} {
		sender := New(nil, testC2S, testS2C, nil)
		// A 32-byte plaintext whose last block is raw: encrypt without adding
		// padding by sealing 31 bytes plus a chosen final byte as "payload" of
		// a full block, then dropping the extra padding block.
		pt := bytes.Repeat([]byte{'x'}, 32)
		pt[31] = last
		if last == 2 {
			pt[30] = 1 // claims two bytes of padding, but they differ
		}
		rec := sealNoPad(sender, TypeApp, pt)
		c, rc := receiverFor(rec, nil, true)
		expectBad(t, c, rc, 0)
		if c.in.decrypts != 1 {
			t.Fatalf("last byte %d: decrypts = %d, want 1 (tag was valid)", last, c.in.decrypts)
		}
	}
}

// sealNoPad builds a correctly tagged record from a block-aligned plaintext
// without adding PKCS#7 padding.
func sealNoPad(c *Conn, t RecordType, pt []byte) []byte {
	hc := &c.out
	length := ivLen + len(pt)
	rec := make([]byte, headerLen+length, headerLen+length+tagLen)
	rec[0] = byte(t)
	binary.BigEndian.PutUint32(rec[1:headerLen], uint32(length))
	rand.Read(rec[headerLen : headerLen+ivLen])
	ct := rec[headerLen+ivLen:]
	copy(ct, pt)
	hc.cbc.SetIV(rec[headerLen : headerLen+ivLen])
	hc.cbc.CryptBlocks(ct, ct)
	hc.macHeader()
	hc.mac.write(rec)
	rec = hc.mac.appendTag(rec)
	hc.seq++
	return rec
}

// TestReadTimeoutResumes interrupts a record with a timeout and checks that
// the next read completes it: a timeout is not a failure.
func TestReadTimeoutResumes(t *testing.T) {
	recs := sealMessages(t, "interrupted", "next")
	sc := &scriptConn{steps: []scriptStep{
		{data: recs[0][:3]},
		{err: os.ErrDeadlineExceeded},
		{data: recs[0][3:20]},
		{err: os.ErrDeadlineExceeded},
		{data: concat(recs[0][20:], recs[1])},
	}}
	c := New(sc, testS2C, testC2S, nil)
	c.SetEstablished()
	var got []string
	timeouts := 0
	for len(got) < 2 {
		m, err := c.ReadMessage()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			timeouts++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m))
	}
	if timeouts != 2 || got[0] != "interrupted" || got[1] != "next" {
		t.Fatalf("timeouts %d, messages %q", timeouts, got)
	}
}

type scriptStep struct {
	data []byte
	err  error
}

// scriptConn serves reads from a fixed list of chunks and errors.
type scriptConn struct {
	net.Conn
	steps []scriptStep
}

func (c *scriptConn) Read(b []byte) (int, error) {
	for len(c.steps) > 0 {
		s := &c.steps[0]
		if s.err != nil {
			err := s.err
			c.steps = c.steps[1:]
			return 0, err
		}
		if len(s.data) == 0 {
			c.steps = c.steps[1:]
			continue
		}
		n := copy(b, s.data)
		s.data = s.data[n:]
		return n, nil
	}
	return 0, io.EOF
}
func (c *scriptConn) Close() error { return nil }

// TestOversizePlaintext seals correctly tagged records whose plaintext is
// 16385 to 16399 bytes: the length field has room for them (a short padding
// under length 16416), but PROTOCOL.md §9.2 caps plaintext at 16384, so each
// is the one sticky bad record, in either role, for APP after login and for
// a handshake record before it. 16384 bytes still open.
func TestOversizePlaintext(t *testing.T) {
	roles := []struct {
		name       string
		send, recv []byte
	}{
		{"server receives", testC2S, testS2C},
		{"client receives", testS2C, testC2S},
	}
	longAuth := func(n int) []byte {
		// method | user "a" | password filling the rest: the lengths add up,
		// so only the size cap can refuse it.
		pw := n - 5
		p := []byte{1, 1, 'a', byte(pw >> 8), byte(pw)}
		return append(p, bytes.Repeat([]byte{'p'}, pw)...)
	}
	for _, role := range roles {
		for _, n := range []int{MaxPlaintext, MaxPlaintext + 1, MaxPlaintext + 8, maxCiphertext - 1} {
			for _, tc := range []struct {
				typ         RecordType
				payload     []byte
				established bool
			}{
				{TypeApp, bytes.Repeat([]byte{'{'}, n), true},
				{TypeAuth, longAuth(n), false},
			} {
				sender := New(nil, role.send, role.recv, nil)
				rec := sealRaw(sender, tc.typ, tc.payload)
				if n > MaxPlaintext && binary.BigEndian.Uint32(rec[1:headerLen]) != maxLength {
					t.Fatalf("%d bytes sealed with length %d, want the largest legal one", n, binary.BigEndian.Uint32(rec[1:headerLen]))
				}
				// A good record after it shows the error is sticky.
				next := sealRaw(sender, TypeApp, []byte("after"))
				rc := newReaderConn(concat(rec, next))
				c := New(rc, role.recv, role.send, nil)
				if tc.established {
					c.SetEstablished()
				}
				if n <= MaxPlaintext {
					typ, p, err := c.ReadRecord()
					if err != nil || typ != tc.typ || len(p) != n {
						t.Fatalf("%s %v %d bytes: got %v, %d bytes, %v", role.name, tc.typ, n, typ, len(p), err)
					}
					continue
				}
				expectBad(t, c, rc, 0)
				if c.in.decrypts != 1 {
					t.Fatalf("%s %v %d bytes: decrypts = %d, want 1 (the tag was valid)", role.name, tc.typ, n, c.in.decrypts)
				}
				if _, _, err := c.ReadRecord(); !isBad(err) {
					t.Fatalf("%s %v %d bytes: next read %v, want ErrBadRecord", role.name, tc.typ, n, err)
				}
			}
		}
	}
}

// TestCloseBeforeFinished: before login the first record each way must be
// FINISHED (PROTOCOL.md §10.3). A CLOSE in its place is a bad record, and it
// is not answered with a CLOSE; after a first record, or once logged in, a
// CLOSE is the ordinary end.
func TestCloseBeforeFinished(t *testing.T) {
	t.Run("first record", func(t *testing.T) {
		sender := New(nil, testC2S, testS2C, nil)
		c, rc := receiverFor(sealRaw(sender, TypeClose, nil), nil, false)
		expectBad(t, c, rc, 0)
	})
	t.Run("after FINISHED", func(t *testing.T) {
		sender := New(nil, testC2S, testS2C, nil)
		stream := concat(sealRaw(sender, TypeFinished, make([]byte, 32)), sealRaw(sender, TypeClose, nil))
		c, rc := receiverFor(stream, nil, false)
		if typ, _, err := c.ReadRecord(); err != nil || typ != TypeFinished {
			t.Fatalf("FINISHED: %v %v", typ, err)
		}
		if typ, _, err := c.ReadRecord(); typ != TypeClose || err != io.EOF {
			t.Fatalf("got %v %v, want CLOSE and io.EOF", typ, err)
		}
		if got := recordTypes(t, rc.written.Bytes()); got != "C" {
			t.Fatalf("answer %q, want one CLOSE", got)
		}
	})
}
