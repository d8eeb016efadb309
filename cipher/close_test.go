package cipher

import (
	"errors"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"
)

// TestCloseAnswered: Close sends CLOSE; the peer's ReadRecord returns io.EOF
// and answers; Close returns after reading that answer.
func TestCloseAnswered(t *testing.T) {
	for _, pm := range transports {
		t.Run(pm.name, func(t *testing.T) {
			client, server := establishedPair(t, pm, nil)
			peer := make(chan error, 1)
			go func() {
				for {
					typ, _, err := server.ReadRecord()
					if err != nil {
						if typ != TypeClose {
							err = errors.New("end without TypeClose: " + err.Error())
						} else if err == io.EOF {
							err = nil
						}
						peer <- err
						return
					}
				}
			}()
			if err := client.WriteMessage([]byte("bye")); err != nil {
				t.Fatal(err)
			}
			if err := client.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			wait(t, peer)
			// The client read the server's CLOSE answer before it closed.
			if client.in.err != io.EOF {
				t.Fatalf("client receive state %v, want io.EOF (peer CLOSE seen)", client.in.err)
			}
			if err := server.WriteMessage([]byte("late")); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("write after answering CLOSE: %v, want net.ErrClosed", err)
			}
			for range 2 {
				if _, err := server.Read(make([]byte, 1)); err != io.EOF {
					t.Fatalf("read after CLOSE: %v, want io.EOF", err)
				}
			}
			if err := server.Close(); err != nil {
				t.Fatalf("server Close: %v", err)
			}
			if err := client.Close(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("second Close: %v, want net.ErrClosed", err)
			}
		})
	}
}

// TestCloseAnswerOnWire checks the bytes: receiving CLOSE makes the receiver
// write exactly one CLOSE record of its own.
func TestCloseAnswerOnWire(t *testing.T) {
	sender, rc := captureSender(t, testC2S, testS2C, nil)
	if err := sender.WriteRecord(TypeClose, nil); err != nil {
		t.Fatal(err)
	}
	if err := sender.WriteMessage([]byte("after close")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after CLOSE: %v", err)
	}
	// Established: before login a CLOSE may not be the first record.
	server, src := receiverFor(rc.written.Bytes(), nil, true)
	if typ, _, err := server.ReadRecord(); typ != TypeClose || err != io.EOF {
		t.Fatalf("got %v %v, want CLOSE and io.EOF", typ, err)
	}
	if got := recordTypes(t, src.written.Bytes()); got != "C" {
		t.Fatalf("answer %s, want one CLOSE", got)
	}
	client := New(newReaderConn(src.written.Bytes()), testC2S, testS2C, nil)
	client.SetEstablished()
	if typ, _, err := client.ReadRecord(); typ != TypeClose || err != io.EOF {
		t.Fatalf("answer opens as %v %v", typ, err)
	}
	// A second CLOSE from the same side is not sent.
	if err := server.WriteRecord(TypeClose, nil); err != nil {
		t.Fatal(err)
	}
	if src.writes != 1 {
		t.Fatalf("%d writes, want 1", src.writes)
	}
}

// TestCloseTimeout: a peer that never answers delays Close by at most
// CloseTimeout (on synctest's fake clock).
func TestCloseTimeout(t *testing.T) {
	for _, wait := range []time.Duration{0, 3 * time.Second} {
		synctest.Test(t, func(t *testing.T) {
			a, b := net.Pipe()
			defer b.Close()
			client := New(a, testC2S, testS2C, &Options{CloseTimeout: wait})
			client.SetEstablished()
			silent := make(chan []byte, 1)
			go func() { // reads everything, answers nothing
				all, _ := io.ReadAll(b)
				silent <- all
			}()
			start := time.Now()
			if err := client.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			want := wait
			if want == 0 {
				want = time.Second
			}
			if got := time.Since(start); got != want {
				t.Fatalf("Close waited %v on the fake clock, want %v", got, want)
			}
			if got := recordTypes(t, <-silent); got != "C" {
				t.Fatalf("peer saw %s, want one CLOSE", got)
			}
		})
	}
}

// TestCloseWithActiveReader: while another goroutine is blocked in Read,
// Close waits for that reader to see the peer's CLOSE.
func TestCloseWithActiveReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		client, server := newPair(t, a, b, nil)
		client.SetEstablished()
		server.SetEstablished()
		clientRead := goErr(func() error {
			_, err := io.ReadAll(client)
			return err
		})
		serverRead := goErr(func() error {
			_, err := io.ReadAll(server)
			return err
		})
		synctest.Wait()
		start := time.Now()
		if err := client.Close(); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) != 0 {
			t.Fatalf("Close waited %v although the peer answered at once", time.Since(start))
		}
		wait(t, clientRead)
		wait(t, serverRead)
	})
}

// TestTruncatedThenClose: the peer closed the transport without CLOSE.
func TestTruncatedThenClose(t *testing.T) {
	for _, pm := range transports {
		t.Run(pm.name, func(t *testing.T) {
			client, server := establishedPair(t, pm, nil)
			server.NetConn().Close()
			if _, err := client.ReadMessage(); !errors.Is(err, ErrTruncated) {
				t.Fatalf("got %v, want ErrTruncated", err)
			}
			client.Close() // must not hang; its error depends on the transport
		})
	}
}
