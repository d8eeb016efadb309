package cipher

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"testing"
)

var gridLengths = []int{0, 1, 15, 16, 17, 4095, 16383, 16384}

func TestRoundTripGrid(t *testing.T) {
	for _, pm := range transports {
		t.Run(pm.name, func(t *testing.T) {
			client, server := establishedPair(t, pm, nil)
			for _, dir := range []struct {
				name     string
				from, to *Conn
			}{{"c2s", client, server}, {"s2c", server, client}} {
				for _, n := range gridLengths {
					t.Run(fmt.Sprintf("%s/len=%d", dir.name, n), func(t *testing.T) {
						msg := make([]byte, n)
						rand.Read(msg)
						done := goErr(func() error { return dir.from.WriteMessage(msg) })
						got, err := dir.to.ReadMessage()
						if err != nil {
							t.Fatal(err)
						}
						wait(t, done)
						if !bytes.Equal(got, msg) {
							t.Fatalf("payload differs: got %d bytes, want %d", len(got), n)
						}
					})
				}
			}
		})
	}
}

func TestStreamOneMiB(t *testing.T) {
	for _, pm := range transports {
		t.Run(pm.name, func(t *testing.T) {
			client, server := establishedPair(t, pm, nil)
			data := make([]byte, 1<<20+123)
			rand.Read(data)
			done := goErr(func() error {
				n, err := client.Write(data)
				if err == nil && n != len(data) {
					err = fmt.Errorf("short write %d", n)
				}
				if err != nil {
					return err
				}
				return client.Close()
			})
			got, err := io.ReadAll(server)
			if err != nil {
				t.Fatal(err)
			}
			wait(t, done)
			if !bytes.Equal(got, data) {
				t.Fatalf("stream differs: got %d bytes, want %d", len(got), len(data))
			}
			// After the CLOSE, reads keep reporting a clean end.
			if _, err := server.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("read after EOF: %v, want io.EOF", err)
			}
		})
	}
}
