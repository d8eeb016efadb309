package msgsig

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A typical chat line, and a full one, as the verification cost grows a
// little with the text (SHA-512 inside Ed25519).
var benchTexts = map[string]string{
	"text=60":   strings.Repeat("x", 60),
	"text=4096": strings.Repeat("x", 4096),
}

func BenchmarkSign(b *testing.B) {
	key := testKey("alice")
	f := Fields{Kind: KindMsg, Target: "#general", From: "alice", Counter: 1, Time: 1, Text: benchTexts["text=60"]}
	for b.Loop() {
		if _, err := Sign(key, &f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is the signature check alone.
func BenchmarkVerify(b *testing.B) {
	key := testKey("alice")
	pub := key.Public().(ed25519.PublicKey)
	for name, text := range benchTexts {
		b.Run(name, func(b *testing.B) {
			f := Fields{Kind: KindMsg, Target: "#general", From: "alice", Counter: 1, Time: 1, Text: text}
			sig, _ := Sign(key, &f)
			for b.Loop() {
				if !Verify(pub, &f, sig) {
					b.Fatal("does not verify")
				}
			}
		})
	}
}

// BenchmarkVerifierCheck is what the client pays per live message: decode,
// verify, the pin (known_users cached, one stat) and the counter.
func BenchmarkVerifierCheck(b *testing.B) {
	now := t0
	v, _ := newTestVerifier(b, "bob", PolicyAcceptNew, &now)
	key := testKey("alice")
	const n = 4096
	evs := make([]*Event, n)
	for i := range evs {
		evs[i] = signedEvent(b, key, KindMsg, "#general", "alice", uint64(i+1), benchTexts["text=60"])
	}
	i := 0
	for b.Loop() {
		if i == n {
			// Counters must increase; start over with a fresh state.
			b.StopTimer()
			v, _ = newTestVerifier(b, "bob", PolicyAcceptNew, &now)
			i = 0
			b.StartTimer()
		}
		if r := v.Check(evs[i]); r.Status != Verified {
			b.Fatal(r.Reason)
		}
		i++
	}
}

// BenchmarkHistoryReplay50 verifies a 50-message history replay of one
// room, five senders with pinned keys, as a client does on every
// (re)join; ms/replay is the time for all 50.
func BenchmarkHistoryReplay50(b *testing.B) {
	now := t0
	v, _ := newTestVerifier(b, "bob", PolicyAcceptNew, &now)
	var history []*Event
	for i := range 50 {
		from := fmt.Sprintf("user%d", i%5)
		ev := signedEvent(b, testKey(from), KindMsg, "#general", from, uint64(i+1), benchTexts["text=60"])
		ev.History = true
		history = append(history, ev)
	}
	// Pin the five keys first: asking is not part of the cost.
	v.StartReplay("#general")
	for _, ev := range history {
		v.Check(ev)
	}
	start := time.Now()
	for b.Loop() {
		v.StartReplay("#general")
		for _, ev := range history {
			if r := v.Check(ev); r.Status != Verified {
				b.Fatal(r.Reason)
			}
		}
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)/1e6, "ms/replay")
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)/50, "ns/msg")
}
