package cipher

import (
	"bytes"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// recordTypes lists the cleartext type bytes of a captured stream.
func recordTypes(t testing.TB, stream []byte) string {
	t.Helper()
	var b []byte
	for _, r := range splitRecords(t, stream) {
		switch RecordType(r[0]) {
		case TypeApp:
			b = append(b, 'D')
		case TypeKeyUpdate:
			b = append(b, 'K')
		case TypeClose:
			b = append(b, 'C')
		default:
			b = append(b, '?')
		}
	}
	return string(b)
}

// readMessages reads len(want) messages and checks them.
func readMessages(t *testing.T, c *Conn, want [][]byte) {
	t.Helper()
	for i, w := range want {
		got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("message %d differs", i)
		}
	}
}

func TestRekeyAtRecordLimit(t *testing.T) {
	opts := &Options{MaxRecordsPerKey: 4}
	sender, rc := captureSender(t, testC2S, testS2C, opts)
	var msgs [][]byte
	for i := range 10 {
		m := []byte(fmt.Sprintf("message %d", i))
		msgs = append(msgs, m)
		if err := sender.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	stream := rc.written.Bytes()
	// KEY_UPDATE goes out while seq < 4-1, so each generation holds two
	// messages and the KEY_UPDATE at seq 2.
	if got, want := recordTypes(t, stream), "DDKDDKDDKDDKDD"; got != want {
		t.Fatalf("records %s, want %s", got, want)
	}
	if sender.out.gen != 4 || sender.out.seq != 2 {
		t.Fatalf("sender at generation %d seq %d, want 4 and 2", sender.out.gen, sender.out.seq)
	}
	recs := splitRecords(t, stream)

	c, _ := receiverFor(stream, opts, true)
	readMessages(t, c, msgs)
	if c.in.gen != 4 || c.in.seq != 2 {
		t.Fatalf("receiver at generation %d seq %d, want 4 and 2", c.in.gen, c.in.seq)
	}

	// A record of an older generation fails after the rekey, even at a
	// matching sequence number.
	for _, old := range []int{0, 1, 3, 9} {
		c, rc := receiverFor(concat(stream, recs[old]), opts, true)
		readMessages(t, c, msgs)
		expectBad(t, c, rc, 0)
	}
}

func TestReceiverEnforcesRecordLimit(t *testing.T) {
	sender, rc := captureSender(t, testC2S, testS2C, nil)
	for i := range 5 {
		if err := sender.WriteMessage([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := recordTypes(t, rc.written.Bytes()); got != "DDDDD" {
		t.Fatalf("default sender rekeyed early: %s", got)
	}
	c, crc := receiverFor(rc.written.Bytes(), &Options{MaxRecordsPerKey: 4}, true)
	expectBad(t, c, crc, 4)
}

func TestRekeyAtBlockLimit(t *testing.T) {
	full := bytes.Repeat([]byte{7}, MaxPlaintext) // 1025 blocks with padding
	opts := &Options{MaxBlocksPerKey: 1026}
	sender, rc := captureSender(t, testC2S, testS2C, opts)
	if err := sender.WriteMessages([][]byte{full, full, full}); err != nil {
		t.Fatal(err)
	}
	if got := recordTypes(t, rc.written.Bytes()); got != "DKDKD" {
		t.Fatalf("records %s, want DKDKD", got)
	}
	c, _ := receiverFor(rc.written.Bytes(), opts, true)
	readMessages(t, c, [][]byte{full, full, full})

	// A default sender does not rekey; a receiver with the lowered limit
	// fails on the record that would pass it.
	sender, rc = captureSender(t, testC2S, testS2C, nil)
	if err := sender.WriteMessages([][]byte{full, full}); err != nil {
		t.Fatal(err)
	}
	c, crc := receiverFor(rc.written.Bytes(), opts, true)
	expectBad(t, c, crc, 1)
}

func TestSoftRekeyBytes(t *testing.T) {
	opts := &Options{RekeyAfterBytes: 100}
	sender, rc := captureSender(t, testC2S, testS2C, opts)
	msg := make([]byte, 50) // 117 bytes on the wire
	var msgs [][]byte
	for range 4 {
		msgs = append(msgs, msg)
		if err := sender.WriteMessage(msg); err != nil {
			t.Fatal(err)
		}
	}
	if got := recordTypes(t, rc.written.Bytes()); got != "DKDKDKD" {
		t.Fatalf("records %s, want DKDKDKD", got)
	}
	c, _ := receiverFor(rc.written.Bytes(), nil, true)
	readMessages(t, c, msgs)
}

// TestSoftRekeyTime checks the default one-hour limit on a fake clock.
func TestSoftRekeyTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sender, rc := captureSender(t, testC2S, testS2C, nil)
		send := func() {
			if err := sender.WriteMessage([]byte("tick")); err != nil {
				t.Fatal(err)
			}
		}
		send()
		time.Sleep(59 * time.Minute)
		send()
		time.Sleep(2 * time.Minute)
		send()
		send()
		if got := recordTypes(t, rc.written.Bytes()); got != "DDKDD" {
			t.Fatalf("records %s, want DDKDD", got)
		}
	})
}

// TestNoRekeyBeforeLogin: KEY_UPDATE is illegal before login, so a sender
// that reaches a (lowered) hard limit then fails instead of rekeying.
func TestNoRekeyBeforeLogin(t *testing.T) {
	rc := newReaderConn(nil)
	c := New(rc, testC2S, testS2C, &Options{MaxRecordsPerKey: 2, RekeyAfterBytes: 1})
	if err := c.WriteRecord(TypeFinished, make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteRecord(TypeAuth, []byte{1}); err != errKeysExhausted {
		t.Fatalf("got %v, want %v", err, errKeysExhausted)
	}
	if got := recordTypes(t, rc.written.Bytes()); got != "?" {
		t.Fatalf("records %s, want one FINISHED", got)
	}
	if err := c.KeyUpdate(); err != errNotEstablished {
		t.Fatalf("KeyUpdate before login: %v", err)
	}
}

func TestExplicitKeyUpdate(t *testing.T) {
	sender, rc := captureSender(t, testC2S, testS2C, nil)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sender.WriteMessage([]byte("a")))
	must(sender.KeyUpdate())
	must(sender.WriteRecord(TypeKeyUpdate, nil))
	must(sender.WriteMessage([]byte("b")))
	if got := recordTypes(t, rc.written.Bytes()); got != "DKKD" {
		t.Fatalf("records %s", got)
	}
	c, _ := receiverFor(rc.written.Bytes(), nil, true)
	readMessages(t, c, [][]byte{[]byte("a"), []byte("b")})
	if c.in.gen != 2 {
		t.Fatalf("receiver generation %d, want 2", c.in.gen)
	}
}

// OnRekey sees every generation change: the sender's own KEY_UPDATEs, at
// a limit or asked for, as sent, and the peer's as received.
func TestOnRekeyCounts(t *testing.T) {
	var sent, received int
	count := func(s bool) {
		if s {
			sent++
		} else {
			received++
		}
	}
	opts := &Options{MaxRecordsPerKey: 4, OnRekey: count}
	sender, rc := captureSender(t, testC2S, testS2C, opts)
	var msgs [][]byte
	for i := range 6 {
		m := []byte(fmt.Sprintf("message %d", i))
		msgs = append(msgs, m)
		if err := sender.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := sender.KeyUpdate(); err != nil {
		t.Fatal(err)
	}
	// DDKDDKDD at the limit, then the explicit K.
	if sent != 3 || received != 0 {
		t.Fatalf("sender counted %d sent, %d received; want 3 and 0", sent, received)
	}
	sent = 0
	c, _ := receiverFor(rc.written.Bytes(), opts, true)
	readMessages(t, c, msgs)
	// The last KEY_UPDATE follows the last message; one more read meets it
	// and then the end of the stream.
	if _, err := c.ReadMessage(); err == nil {
		t.Fatal("read past the end succeeded")
	}
	if received != 3 || sent != 0 {
		t.Fatalf("receiver counted %d received, %d sent; want 3 and 0", received, sent)
	}
}
