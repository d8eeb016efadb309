package store_test

import (
	"fmt"
	"time"

	"securechat/store"
)

// A hub numbers messages from State.LastID, fans each one out at once and
// acknowledges it to its sender only from the Append callback, which it
// posts back to its own loop (here a channel) rather than acting on the
// writer goroutine.
func Example() {
	s := store.OpenMemory(nil) // store.Open(filepath.Join(stateDir, "chat.db"), opts) on a real server
	defer s.Close()
	st, err := s.Load()
	if err != nil {
		panic(err)
	}
	lastID := st.LastID

	committed := make(chan error, 16) // the hub loop's inbox
	lastID++
	m := store.Message{ID: lastID, Time: time.Now(), Kind: store.KindMsg, Room: "#general", From: "alice", Text: "hello"}
	if err := s.Append(m, func(err error) { committed <- err }); err != nil {
		fmt.Println("tell alice: not stored:", err) // ErrBacklog or ErrClosed
	}
	if err := <-committed; err != nil {
		fmt.Println("tell alice: not stored:", err)
	} else {
		fmt.Println("ack", m.ID)
	}

	// Reads block; a hub runs them off its loop.
	history, _ := s.History("#general", 0, 50)
	fmt.Println(len(history), history[0].From, history[0].Text)
	// Output:
	// ack 1
	// 1 alice hello
}
