package credstore

import (
	"strings"
	"testing"
)

// FuzzParseLine: the parser never panics, and every line it accepts has a
// cost within the ceiling and serializes back to exactly the same bytes
// (so there is one spelling per account, and edits never rewrite a line
// they did not mean to change).
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"alice:" + refHash,
		"alice:" + refHash + ":admin",
		"bob:" + bcryptHash,
		"bob:" + strings.Replace(bcryptHash, "$2a$", "$2y$", 1) + ":admin",
		"min:$argon2id$v=19$m=8,t=1,p=1$eHh4eHh4eHg$a2tra2tra2tra2tr",
		"x:$argon2id$v=19$m=4294967295,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"x:$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ=$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"x:$argon2id$v=19$m=16,t=1,p=2$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"x:$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"x:$2a$15$.0jHlt3HHqsMAdXZ3o6YpuJeCSQ1aDR2SkY92EOsgRSEwdqjW/i52",
		"# comment",
		"",
		"alice:hunter2",
		"a:b:c:d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		a, err := ParseLine(line)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "credstore: ") {
				t.Errorf("error without prefix: %v", err)
			}
			return
		}
		if got := a.String(); got != line {
			t.Fatalf("re-serialized %q as %q", line, got)
		}
		if CheckName(a.Name) != nil {
			t.Fatalf("accepted bad name %q", a.Name)
		}
		h := a.hash
		switch h.scheme {
		case schemeArgon2id:
			if err := h.params.Check(MaxParams); err != nil {
				t.Fatalf("accepted %v: %v", h.params, err)
			}
			if h.params.Time < 1 || h.params.Threads < 1 || h.params.Memory < 8*uint32(h.params.Threads) {
				t.Fatalf("accepted parameters argon2 cannot run: %v", h.params)
			}
			if len(h.salt) < minSaltSize || len(h.salt) > maxSaltSize || len(h.key) < minKeySize || len(h.key) > maxKeySize {
				t.Fatalf("accepted salt %d / hash %d bytes", len(h.salt), len(h.key))
			}
		case schemeBcrypt:
			if h.cost < 4 || h.cost > MaxBcryptCost {
				t.Fatalf("accepted bcrypt cost %d", h.cost)
			}
		default:
			t.Fatalf("accepted unknown scheme %d", h.scheme)
		}
		// The same line in a file parses to the same account.
		file, err := parseFile("f", []byte(line+"\n"), MaxParams)
		if err != nil {
			t.Fatalf("ParseLine accepts %q but parseFile says %v", line, err)
		}
		if b, ok := file.Lookup(a.Name); !ok || b.String() != line {
			t.Fatalf("parseFile gave %v", b)
		}
	})
}
