package cipher

import (
	"crypto/aes"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"net"
	"testing"
)

var benchSizes = []int{64, 1024, 16384}

func sizeName(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

// BenchmarkSeal measures sealing one APP record into a reused buffer: fresh
// IV, padding, AES-256-CBC and HMAC-SHA-256.
func BenchmarkSeal(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			c := New(nil, testC2S, testS2C, nil)
			payload := make([]byte, n)
			buf := make([]byte, 0, sealedLen(n))
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				buf = c.out.seal(buf[:0], TypeApp, payload)
			}
		})
	}
}

// BenchmarkOpen measures verifying and decrypting one record. Each iteration
// also copies the sealed record back, because opening decrypts in place.
func BenchmarkOpen(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			sender := New(nil, testC2S, testS2C, nil)
			sealed := sender.out.seal(nil, TypeApp, make([]byte, n))
			c := New(nil, testS2C, testC2S, nil)
			rec := make([]byte, len(sealed))
			lim := c.lim
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				copy(rec, sealed)
				c.in.seq, c.in.blocks = 0, 0
				if _, _, ok := c.in.open(rec, &lim); !ok {
					b.Fatal("open failed")
				}
			}
		})
	}
}

// BenchmarkPrimitives is the baseline for Seal: AES-256-CBC encryption and
// HMAC-SHA-256 over the same padded bytes with reused state, and nothing else
// (no IV generation, no copy, no header).
func BenchmarkPrimitives(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			block, err := aes.NewCipher(testC2S)
			if err != nil {
				b.Fatal(err)
			}
			enc := newCBC(block, true)
			mac := hmac.New(sha256.New, testS2C)
			buf := make([]byte, (n/aes.BlockSize+1)*aes.BlockSize)
			iv := make([]byte, aes.BlockSize)
			var tag [sha256.Size]byte
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				enc.SetIV(iv)
				enc.CryptBlocks(buf, buf)
				mac.Reset()
				mac.Write(buf)
				mac.Sum(tag[:0])
			}
		})
	}
}

// discardConn swallows writes.
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkWriteMessage is the whole send path down to the transport's Write.
func BenchmarkWriteMessage(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			c := New(discardConn{}, testC2S, testS2C, nil)
			c.SetEstablished()
			payload := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.WriteMessage(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSteadyStateAllocations: sealing, opening and writing allocate nothing
// once a connection is set up.
func TestSteadyStateAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("skipping: the race detector allocates on its own")
	}
	payload := make([]byte, MaxPlaintext)
	c := New(discardConn{}, testC2S, testS2C, nil)
	c.SetEstablished()
	buf := make([]byte, 0, maxRecordLen)
	if a := testing.AllocsPerRun(50, func() { buf = c.out.seal(buf[:0], TypeApp, payload) }); a != 0 {
		t.Errorf("seal: %v allocs per record", a)
	}
	if a := testing.AllocsPerRun(50, func() { c.WriteMessage(payload) }); a != 0 {
		t.Errorf("WriteMessage: %v allocs per record", a)
	}
	sealed := New(nil, testC2S, testS2C, nil).out.seal(nil, TypeApp, payload)
	r := New(nil, testS2C, testC2S, nil)
	rec := make([]byte, len(sealed))
	if a := testing.AllocsPerRun(50, func() {
		copy(rec, sealed)
		r.in.seq = 0
		if _, _, ok := r.in.open(rec, &r.lim); !ok {
			t.Fatal("open failed")
		}
	}); a != 0 {
		t.Errorf("open: %v allocs per record", a)
	}

	// ReadRecord over a transport.
	opts := &Options{MaxRecordsPerKey: 1000}
	sender, rc := captureSender(t, testC2S, testS2C, opts)
	for range 60 {
		if err := sender.WriteMessage(payload[:100]); err != nil {
			t.Fatal(err)
		}
	}
	reader, _ := receiverFor(rc.written.Bytes(), opts, true)
	if a := testing.AllocsPerRun(50, func() {
		if _, _, err := reader.ReadRecord(); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("ReadRecord: %v allocs per record", a)
	}
}
