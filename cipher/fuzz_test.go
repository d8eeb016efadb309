package cipher

import (
	"bytes"
	"crypto/aes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func typeAllowed(t RecordType, established bool) bool {
	switch t {
	case TypeApp, TypeClose:
		return established || t == TypeClose
	case TypeFinished, TypeAuth, TypeAuthResult:
		return !established
	}
	return false
}

// FuzzOpen feeds arbitrary bytes to the receive path twice: as a raw record
// stream, and as the type, IV and ciphertext of a record that carries a valid
// tag, so that the checks after the MAC (padding, type, form) see arbitrary
// input too. Nothing may panic; every outcome is a payload of an allowed type
// or one of the documented errors.
func FuzzOpen(f *testing.F) {
	sender, rc := captureSender(f, testC2S, testS2C, &Options{MaxRecordsPerKey: 3})
	for _, m := range []string{"", "x", "sixteen bytes!!!", "a longer message that spans blocks"} {
		if err := sender.WriteMessage([]byte(m)); err != nil {
			f.Fatal(err)
		}
	}
	if err := sender.WriteRecord(TypeClose, nil); err != nil {
		f.Fatal(err)
	}
	stream := rc.written.Bytes()
	f.Add(stream, false)
	for _, r := range splitRecords(f, stream) {
		f.Add(bytes.Clone(r), false)
	}
	for _, typ := range []RecordType{TypeFinished, TypeAuth, TypeAuthResult, TypeApp, TypeKeyUpdate} {
		pre := New(nil, testC2S, testS2C, nil) // each seed is a first record
		f.Add(sealRaw(pre, typ, []byte{1, 2, 3}), true)
	}
	f.Add([]byte{0x20, 0, 0, 0, 32}, false)
	f.Add(append([]byte{byte(TypeKeyUpdate)}, make([]byte, 32)...), false)
	f.Add(append([]byte{byte(TypeApp)}, bytes.Repeat([]byte{16}, 48)...), true)

	f.Fuzz(func(t *testing.T, data []byte, preLogin bool) {
		established := !preLogin

		// As a raw stream.
		c, _ := receiverFor(data, &Options{MaxRecordsPerKey: 3}, established)
		for range 64 {
			typ, p, err := c.ReadRecord()
			if err != nil {
				if !isBad(err) && !errors.Is(err, ErrTruncated) && err != io.EOF {
					t.Fatalf("unexpected error %v", err)
				}
				if err == io.EOF && typ != TypeClose {
					t.Fatalf("io.EOF without CLOSE")
				}
				break
			}
			if !typeAllowed(typ, established) || len(p) > MaxPlaintext {
				t.Fatalf("accepted %v with %d bytes (established %v)", typ, len(p), established)
			}
		}

		// As the parts of a correctly tagged record.
		if len(data) < 1+ivLen+aes.BlockSize {
			return
		}
		typ := RecordType(data[0])
		iv := data[1 : 1+ivLen]
		ct := data[1+ivLen:]
		ct = ct[:min(len(ct)/aes.BlockSize*aes.BlockSize, maxCiphertext)]
		s := New(nil, testC2S, testS2C, nil)
		rec := make([]byte, headerLen, headerLen+ivLen+len(ct)+tagLen)
		rec[0] = byte(typ)
		binary.BigEndian.PutUint32(rec[1:], uint32(ivLen+len(ct)))
		rec = append(append(rec, iv...), ct...)
		s.out.macHeader()
		s.out.mac.write(rec)
		rec = s.out.mac.appendTag(rec)

		c, _ = receiverFor(rec, nil, established)
		got, p, err := c.ReadRecord()
		if c.in.decrypts != 1 {
			t.Fatalf("a correctly tagged record was decrypted %d times", c.in.decrypts)
		}
		if err != nil {
			if !isBad(err) && !(err == io.EOF && got == TypeClose) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if got != typ || !typeAllowed(typ, established) {
			t.Fatalf("accepted %v (established %v)", typ, established)
		}
		// Accepted means the padding was canonical: sealing the payload again
		// with the same IV reproduces the record.
		again := New(nil, testC2S, testS2C, nil)
		if resealed := again.out.sealWithIV(nil, typ, p, iv); !bytes.Equal(resealed, rec) {
			t.Fatalf("accepted record does not reseal to itself")
		}
	})
}

// FuzzRoundTrip seals arbitrary payloads through the public write methods and
// checks that the other side reads them back unchanged. split cuts the
// payload into a batch for WriteMessages and sets how soon keys rotate.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte(""), uint16(1))
	f.Add([]byte("hello"), uint16(2))
	f.Add(bytes.Repeat([]byte{0xa5}, MaxPlaintext+600), uint16(1000))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		data = data[:min(len(data), 3*MaxPlaintext)] // more adds time, not paths
		msg := data[:min(len(data), MaxPlaintext)]
		// At most 64 parts and a rotation every few records keep one run cheap.
		n := max(int(split), 1, (len(msg)+63)/64)
		opts := &Options{RekeyAfterBytes: 200 + int64(split)}
		sender, rc := captureSender(t, testC2S, testS2C, opts)
		if err := sender.WriteMessage(msg); err != nil {
			t.Fatal(err)
		}
		var parts [][]byte
		for rest := msg; len(rest) > 0; rest = rest[min(n, len(rest)):] {
			parts = append(parts, rest[:min(n, len(rest))])
		}
		if err := sender.WriteMessages(parts); err != nil {
			t.Fatal(err)
		}
		if n, err := sender.Write(data); err != nil || n != len(data) {
			t.Fatalf("Write = %d, %v", n, err)
		}

		c, _ := receiverFor(rc.written.Bytes(), opts, true)
		if got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("message: %v", err)
		}
		for i, want := range parts {
			if got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("part %d: %v", i, err)
			}
		}
		got := make([]byte, len(data))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("stream: %v", err)
		}
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, ErrTruncated) {
			t.Fatalf("after the data: %v, want ErrTruncated", err)
		}
	})
}
