package cipher

import (
	"bytes"
	"net"
	"testing"
)

// captureConn records every byte written through it.
type captureConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *captureConn) Write(p []byte) (int, error) {
	c.buf.Write(p)
	return len(p), nil
}

// TestFreshIVs checks RL-4: every record carries its own unpredictable IV,
// never one derived from the previous record. The same plaintext sealed
// many times under the same keys must give distinct IVs, none equal to the
// last ciphertext block of the record before it (the chained-IV mistake of
// SSL 3.0, TLS 1.0 and SSH-CBC), and distinct ciphertexts.
func TestFreshIVs(t *testing.T) {
	const records = 200
	cc := &captureConn{}
	c := New(cc, testC2S, testS2C, nil)
	c.SetEstablished()
	msg := bytes.Repeat([]byte("same plaintext "), 4)
	for range records {
		if err := c.WriteMessage(msg); err != nil {
			t.Fatal(err)
		}
	}
	wire := cc.buf.Bytes()
	seenIV := map[string]bool{}
	seenCT := map[string]bool{}
	var prevLastBlock []byte
	for i := 0; i < records; i++ {
		if len(wire) < 5 {
			t.Fatalf("record %d: short wire", i)
		}
		length := int(wire[1])<<24 | int(wire[2])<<16 | int(wire[3])<<8 | int(wire[4])
		body := wire[5 : 5+length]
		iv, ct := body[:16], body[16:]
		if seenIV[string(iv)] {
			t.Fatalf("record %d reuses an IV", i)
		}
		if seenCT[string(ct)] {
			t.Fatalf("record %d repeats a ciphertext for the same plaintext", i)
		}
		if prevLastBlock != nil && bytes.Equal(iv, prevLastBlock) {
			t.Fatalf("record %d's IV is the previous record's last ciphertext block", i)
		}
		seenIV[string(iv)], seenCT[string(ct)] = true, true
		prevLastBlock = append(prevLastBlock[:0], ct[len(ct)-16:]...)
		wire = wire[5+length+32:]
	}
	if len(wire) != 0 {
		t.Fatalf("%d bytes left after %d records", len(wire), records)
	}
}
