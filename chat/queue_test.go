package chat

import (
	"runtime"
	"strconv"
	"testing"
)

// TestOutQueueOrderAcrossChunks pushes from one goroutine and takes from
// another, as the loop and a writer do, across many chunk boundaries and
// recycled chunks: every event arrives once, in order, and a drained
// queue counts zero.
func TestOutQueueOrderAcrossChunks(t *testing.T) {
	const total = 20 * queueChunkLen * 50
	var q outQueue
	q.init()
	done := make(chan error, 1)
	go func() {
		next := 0
		batch := make([][]byte, 0, maxBatch)
		for next < total {
			<-q.wake
			for {
				batch = q.take(batch[:0], maxBatch)
				if len(batch) == 0 {
					break
				}
				for _, b := range batch {
					if got := string(b); got != strconv.Itoa(next) {
						done <- &orderError{want: next, got: got}
						return
					}
					next++
				}
			}
		}
		done <- nil
	}()
	for i := range total {
		q.push([]byte(strconv.Itoa(i)))
		if i%97 == 0 {
			// Let the writer catch up now and then, so that it sees both
			// an empty queue and a long one.
			for q.len() > 0 {
				runtime.Gosched()
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := q.len(); n != 0 {
		t.Fatalf("len %d after everything was taken", n)
	}
}

func TestOutQueueTakeBounds(t *testing.T) {
	var q outQueue
	q.init()
	for i := range 3*queueChunkLen + 5 {
		q.push([]byte{byte(i)})
	}
	if q.len() != 3*queueChunkLen+5 {
		t.Fatalf("len %d", q.len())
	}
	batch := q.take(make([][]byte, 0, 10), 10)
	if len(batch) != 10 || batch[0][0] != 0 || batch[9][0] != 9 {
		t.Fatalf("first take: %v", batch)
	}
	// take appends to what batch already holds, up to max in all.
	batch = q.take(batch[:3], 20)
	if len(batch) != 20 || batch[3][0] != 10 || batch[19][0] != 26 {
		t.Fatalf("second take: %v", batch)
	}
	rest := q.take(nil, 1000)
	if len(rest) != 3*queueChunkLen+5-27 || rest[0][0] != 27 || q.len() != 0 {
		t.Fatalf("rest %d events from %v, len %d", len(rest), rest[0], q.len())
	}
	if got := q.take(nil, 10); len(got) != 0 {
		t.Fatalf("empty queue gave %v", got)
	}
	if q.spare.Load() == nil {
		t.Error("no drained chunk was kept for reuse")
	}
}

type orderError struct {
	want int
	got  string
}

func (e *orderError) Error() string {
	return "event " + strconv.Itoa(e.want) + " expected, got " + e.got
}
