package credstore

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// testParams are the cheap parameters tests and benchmarks hash with.
var testParams = Params{Memory: 64, Time: 1, Threads: 1}

// BenchmarkHash measures one Argon2id computation, the cost of a login, at
// the candidate defaults and at the test parameters.
func BenchmarkHash(b *testing.B) {
	for _, p := range []Params{
		MinParams, // OWASP minimum, m=19 MiB,t=2,p=1
		{Memory: 64 * 1024, Time: 2, Threads: 1},
		DefaultParams,
		{Memory: 64 * 1024, Time: 3, Threads: 2},
		testParams,
	} {
		b.Run(p.String(), func(b *testing.B) {
			h := newArgon2id([]byte("correct horse battery staple"), p)
			for b.Loop() {
				if !h.matches([]byte("correct horse battery staple")) {
					b.Fatal("no match")
				}
			}
		})
	}
}

// BenchmarkBcrypt measures imported bcrypt hashes up to the ceiling.
func BenchmarkBcrypt(b *testing.B) {
	for _, cost := range []int{10, 12, MaxBcryptCost} {
		b.Run(fmt.Sprintf("cost=%d", cost), func(b *testing.B) {
			text, err := bcrypt.GenerateFromPassword([]byte("password"), cost)
			if err != nil {
				b.Fatal(err)
			}
			h, err := parseBcrypt(string(text))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if !h.matches([]byte("password")) {
					b.Fatal("no match")
				}
			}
		})
	}
}

// BenchmarkVerifyParallel measures login throughput through the pool (at
// most GOMAXPROCS hashes at once), for a known and an unknown user.
func BenchmarkVerifyParallel(b *testing.B) {
	for _, p := range []Params{MinParams, DefaultParams} {
		path := filepath.Join(b.TempDir(), "creds.txt")
		writeCreds(b, path, mustAccount(b, "alice", RoleUser, "alice-password", p).String()+"\n")
		s, err := Load(path, &Options{Params: p, NoRehash: true})
		if err != nil {
			b.Fatal(err)
		}
		for _, user := range []string{"alice", "mallory"} {
			b.Run(p.String()+"/"+user, func(b *testing.B) {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						err := s.Verify(context.Background(), user, []byte("alice-password"))
						if (err == nil) != (user == "alice") {
							b.Error(err)
						}
					}
				})
			})
		}
	}
}
