package msgsig_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"securechat/msgsig"
)

// A sender signs a room message; a recipient judges the event the server
// relays, pinning the sender's key on first sight, and catches the same
// event shown again.
func Example() {
	seed := sha256.Sum256([]byte("example key"))
	alice := ed25519.NewKeyFromSeed(seed[:])

	// Sender: the session's login key (handshake.Session.UserSigner).
	sender := &msgsig.Sender{Signer: alice}
	s, err := sender.Sign(msgsig.KindMsg, "#general", "alice", "hello")
	if err != nil {
		panic(err)
	}

	// Recipient: one Verifier per session, fed every msg event in order.
	dir, _ := os.MkdirTemp("", "msgsig-example")
	defer os.RemoveAll(dir)
	v, err := msgsig.NewVerifier(msgsig.Config{
		KnownUsers: filepath.Join(dir, "known_users"),
		HostPort:   "chat.example.org:7000",
		Self:       "bob",
		Policy:     msgsig.PolicyAcceptNew,
		Now:        time.Now,
	})
	if err != nil {
		panic(err)
	}
	ev := &msgsig.Event{Kind: "msg", Room: "#general", From: "alice", Text: "hello",
		Key: s.Key, Sig: s.Sig, Ctr: s.Ctr, Cts: s.Cts}
	first := v.Check(ev)
	fmt.Println(first.Status, first.Pinned, first.Mark())
	again := v.Check(ev)
	fmt.Println(again.Status, again.Reason, again.Mark())
	// Output:
	// verified true ✓
	// failed replayed !!
}
