package cipher

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentWriters runs several writers per side against one reader per
// side, both directions at once, with limits low enough that keys rotate
// while writers race. Run with -race.
func TestConcurrentWriters(t *testing.T) {
	const writers, perWriter = 4, 60
	opts := &Options{MaxRecordsPerKey: 7, RekeyAfterBytes: 3000}
	for _, pm := range transports {
		t.Run(pm.name, func(t *testing.T) {
			client, server := establishedPair(t, pm, opts)
			var wg sync.WaitGroup
			errs := make(chan error, 2*writers+2)
			for _, side := range []*Conn{client, server} {
				for w := range writers {
					wg.Go(func() {
						if err := writeNumbered(side, w, perWriter); err != nil {
							errs <- fmt.Errorf("writer %d: %w", w, err)
						}
					})
				}
			}
			for _, side := range []*Conn{client, server} {
				wg.Go(func() {
					if err := readNumbered(side, writers, perWriter); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if client.out.gen == 0 || server.in.gen != client.out.gen {
				t.Fatalf("generations: client out %d, server in %d; want equal and > 0", client.out.gen, server.in.gen)
			}
		})
	}
}

// writeNumbered sends n messages (writer id, index, filler) through a mix of
// the write methods, with a KeyUpdate now and then.
func writeNumbered(c *Conn, id, n int) error {
	msg := func(i int) []byte {
		b := make([]byte, 8+(i*37)%700)
		binary.BigEndian.PutUint32(b, uint32(id))
		binary.BigEndian.PutUint32(b[4:], uint32(i))
		return b
	}
	for i := 0; i < n; {
		var err error
		switch i % 4 {
		case 0:
			err = c.WriteMessage(msg(i))
			i++
		case 1:
			_, err = c.Write(msg(i)) // under MaxPlaintext: exactly one record
			i++
		case 2:
			batch := [][]byte{msg(i)}
			if i+1 < n {
				batch = append(batch, msg(i+1))
			}
			err = c.WriteMessages(batch)
			i += len(batch)
		}
		if err == nil && i%10 == 0 && i < n { // a trailing KEY_UPDATE would have no reader
			err = c.KeyUpdate()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readNumbered reads writers*n messages and checks that each writer's
// messages arrive complete and in order.
func readNumbered(c *Conn, writers, n int) error {
	next := make([]int, writers)
	for range writers * n {
		m, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if len(m) < 8 {
			return fmt.Errorf("short message %d bytes", len(m))
		}
		id, i := int(binary.BigEndian.Uint32(m)), int(binary.BigEndian.Uint32(m[4:]))
		if id >= writers || i != next[id] || len(m) != 8+(i*37)%700 {
			return fmt.Errorf("writer %d message %d (len %d), want message %d", id, i, len(m), next[id])
		}
		next[id]++
	}
	return nil
}
