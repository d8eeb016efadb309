package cipher

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestWriteMessagesIsOneWrite(t *testing.T) {
	sender, rc := captureSender(t, testC2S, testS2C, nil)
	var msgs [][]byte
	for i := range 50 {
		msgs = append(msgs, bytes.Repeat([]byte{byte(i)}, i*40))
	}
	if err := sender.WriteMessages(msgs); err != nil {
		t.Fatal(err)
	}
	if rc.writes != 1 {
		t.Fatalf("%d underlying writes, want 1", rc.writes)
	}
	c, _ := receiverFor(rc.written.Bytes(), nil, true)
	readMessages(t, c, msgs)
}

func TestWriteErrorsAreLocal(t *testing.T) {
	pre := New(newReaderConn(nil), testC2S, testS2C, nil)
	if err := pre.WriteMessage([]byte("x")); err != errNotEstablished {
		t.Fatalf("APP before login: %v", err)
	}
	if _, err := pre.Write([]byte("x")); err != errNotEstablished {
		t.Fatalf("Write before login: %v", err)
	}
	if err := pre.WriteMessages([][]byte{[]byte("x")}); err != errNotEstablished {
		t.Fatalf("WriteMessages before login: %v", err)
	}
	if err := pre.WriteRecord(TypeKeyUpdate, nil); err != errNotEstablished {
		t.Fatalf("KEY_UPDATE before login: %v", err)
	}

	sender, rc := captureSender(t, testC2S, testS2C, nil)
	big := make([]byte, MaxPlaintext+1)
	for name, err := range map[string]error{
		"too large":          sender.WriteMessage(big),
		"batch with one big": sender.WriteMessages([][]byte{[]byte("ok"), big}),
		"auth too large":     sender.WriteRecord(TypeAuth, big),
		"unknown type":       sender.WriteRecord(0x7f, nil),
		"key update payload": sender.WriteRecord(TypeKeyUpdate, []byte{1}),
		"close payload":      sender.WriteRecord(TypeClose, []byte{1}),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if rc.written.Len() != 0 {
		t.Fatalf("refused writes sent %d bytes", rc.written.Len())
	}
	// None of those is sticky.
	if err := sender.WriteMessage([]byte("fine")); err != nil {
		t.Fatal(err)
	}
	c, _ := receiverFor(rc.written.Bytes(), nil, true)
	readMessages(t, c, [][]byte{[]byte("fine")})
}

// TestStreamWriteSplits: Write cuts large buffers into full records.
func TestStreamWriteSplits(t *testing.T) {
	sender, rc := captureSender(t, testC2S, testS2C, nil)
	data := make([]byte, 5*MaxPlaintext+10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if n, err := sender.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	recs := splitRecords(t, rc.written.Bytes())
	if len(recs) != 6 || len(recs[0]) != maxRecordLen || rc.writes != 2 {
		t.Fatalf("%d records (first %d bytes) in %d writes; want 6 (%d) in 2", len(recs), len(recs[0]), rc.writes, maxRecordLen)
	}
	c, _ := receiverFor(rc.written.Bytes(), nil, true)
	got, err := io.ReadAll(io.LimitReader(c, int64(len(data))))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
}

// TestSecretsCopied: New keeps no reference to the caller's secret slices.
func TestSecretsCopied(t *testing.T) {
	send, recv := bytes.Clone(testC2S), bytes.Clone(testS2C)
	sender, rc := captureSender(t, send, recv, nil)
	clear(send)
	clear(recv)
	if err := sender.WriteMessage([]byte("still keyed")); err != nil {
		t.Fatal(err)
	}
	c, _ := receiverFor(rc.written.Bytes(), nil, true)
	readMessages(t, c, [][]byte{[]byte("still keyed")})
}

// TestHandshakeAbort: Abort fails the connection like a bad record.
func TestHandshakeAbort(t *testing.T) {
	rec := sealMessages(t, "unused")[0]
	rc := newReaderConn(rec)
	c := New(abortConn{rc}, testS2C, testC2S, nil)
	if err := c.Abort(); err != nil {
		t.Fatal(err)
	}
	if !rc.aborted {
		t.Fatal("transport not aborted")
	}
	if _, _, err := c.ReadRecord(); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("read after Abort: %v", err)
	}
	if err := c.WriteRecord(TypeFinished, make([]byte, 32)); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("write after Abort: %v", err)
	}
	if rc.written.Len() != 0 {
		t.Fatal("bytes written after Abort")
	}
}

func TestRecordTypeString(t *testing.T) {
	for typ, want := range map[RecordType]string{TypeFinished: "FINISHED", TypeApp: "APP", 0x99: "RecordType(0x99)"} {
		if got := typ.String(); got != want {
			t.Errorf("%d: %q, want %q", typ, got, want)
		}
	}
}
