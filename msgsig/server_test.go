package msgsig

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestCheckRequest(t *testing.T) {
	alice := testKey("alice")
	pub := alice.Public().(ed25519.PublicKey)
	f := Fields{Kind: KindMsg, Target: "#general", From: "alice", Counter: 5, Time: 6, Text: "hi"}
	raw, err := Sign(alice, &f)
	if err != nil {
		t.Fatal(err)
	}
	sig := EncodeSig(raw)
	if err := CheckRequest(pub, &f, sig); err != nil {
		t.Fatalf("good request: %v", err)
	}
	unsanitised := f
	unsanitised.Text = "hi\t"
	bad := map[string]struct {
		key ed25519.PublicKey
		f   Fields
		sig string
	}{
		"password session":                 {nil, f, sig},
		"another session's key":            {testKey("bob").Public().(ed25519.PublicKey), f, sig},
		"text the server changed":          {pub, unsanitised, sig},
		"no sig":                           {pub, f, ""},
		"short sig":                        {pub, f, EncodeSig(raw[:63])},
		"counter 0":                        {pub, Fields{Kind: KindMsg, Target: "#general", From: "alice", Text: "hi"}, sig},
		"signed for another room":          {pub, Fields{Kind: KindMsg, Target: "#random", From: "alice", Counter: 5, Time: 6, Text: "hi"}, sig},
		"signed by alice, sent by mallory": {pub, Fields{Kind: KindMsg, Target: "#general", From: "mallory", Counter: 5, Time: 6, Text: "hi"}, sig},
	}
	for name, c := range bad {
		if err := CheckRequest(c.key, &c.f, c.sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !Signs("", 1, 0) || !Signs("x", 0, 0) || Signs("", 0, 0) {
		t.Error("Signs")
	}
}
