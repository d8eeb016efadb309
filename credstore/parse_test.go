package credstore

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Hashes of published vectors, reused in the tables.
const (
	// phc-winner-argon2 reference vector: "password" / "somesalt".
	refHash = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	// bcrypt of "bcrypt-password" at cost 4.
	bcryptHash = "$2a$04$.0jHlt3HHqsMAdXZ3o6YpuJeCSQ1aDR2SkY92EOsgRSEwdqjW/i52"
	bcryptPass = "bcrypt-password"
)

func TestParseFileGood(t *testing.T) {
	content := strings.Join([]string{
		"# accounts",
		"",
		"   ",
		"\t# indented comment",
		"alice:" + refHash,
		"root:" + refHash + ":admin",
		"a.b_c-9:" + strings.Replace(bcryptHash, "$2a$", "$2b$", 1),
		"yy:" + strings.Replace(bcryptHash, "$2a$", "$2y$", 1),
		"aa:" + bcryptHash,
		"min:$argon2id$v=19$m=8,t=1,p=1$eHh4eHh4eHg$a2tra2tra2tra2tr",
		"max:$argon2id$v=19$m=262144,t=10,p=8$" + b64.EncodeToString(make([]byte, 48)) + "$" + b64.EncodeToString(make([]byte, 64)),
		strings.Repeat("n", 32) + ":" + refHash,
	}, "\n") + "\n"
	f, err := parseFile("creds.txt", []byte(content), MaxParams)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name, scheme string
		role         Role
	}{
		{"alice", "argon2id m=65536,t=2,p=1", RoleUser},
		{"root", "argon2id m=65536,t=2,p=1", RoleAdmin},
		{"a.b_c-9", "bcrypt cost=4", RoleUser},
		{"yy", "bcrypt cost=4", RoleUser},
		{"aa", "bcrypt cost=4", RoleUser},
		{"min", "argon2id m=8,t=1,p=1", RoleUser},
		{"max", "argon2id m=262144,t=10,p=8", RoleUser},
		{strings.Repeat("n", 32), "argon2id m=65536,t=2,p=1", RoleUser},
	}
	got := f.Accounts()
	if len(got) != len(want) {
		t.Fatalf("got %d accounts, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Name != w.name || got[i].Scheme() != w.scheme || got[i].Role != w.role {
			t.Errorf("account %d = %s %q %v, want %s %q %v", i, got[i].Name, got[i].Scheme(), got[i].Role, w.name, w.scheme, w.role)
		}
	}
	if string(f.Bytes()) != content {
		t.Errorf("Bytes() changed the file:\n%s", f.Bytes())
	}
}

func TestParseFileBad(t *testing.T) {
	h := func(params string) string {
		return "$argon2id$v=19$" + params + "$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	}
	tests := []struct {
		name, line, want string
	}{
		{"no colon", "alice", "want name:hash or name:hash:admin"},
		{"too many fields", "alice:" + refHash + ":admin:x", "want name:hash or name:hash:admin"},
		{"empty name", ":" + refHash, "empty user name"},
		{"upper case", "Alice:" + refHash, `user name "Alice" has characters outside [a-z0-9_.-]{1,32}`},
		{"leading space", " alice:" + refHash, `user name " alice" has characters outside`},
		{"unicode name", "alíce:" + refHash, "has characters outside"},
		{"long name", strings.Repeat("n", 33) + ":" + refHash, "user name is longer than 32 characters"},
		{"unknown role", "alice:" + refHash + ":root", `unknown role "root" (the only role is admin)`},
		{"empty role", "alice:" + refHash + ":", `unknown role ""`},
		{"empty hash", "alice:", "user alice has no password hash"},
		{"empty hash admin", "alice::admin", "user alice has no password hash"},
		{"plain text", "alice:hunter2", "user alice: unknown hash scheme (want $argon2id$ or bcrypt)"},
		{"sha512crypt", "alice:$6$salt$hash", "unknown hash scheme"},
		{"argon2i", "alice:" + strings.Replace(refHash, "argon2id", "argon2i", 1), "only the argon2id variant is accepted"},
		{"argon2d", "alice:" + strings.Replace(refHash, "argon2id", "argon2d", 1), "only the argon2id variant is accepted"},
		{"version 16", "alice:" + strings.Replace(refHash, "v=19", "v=16", 1), `unsupported argon2 version "v=16" (want v=19)`},
		{"no version", "alice:$argon2id$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "malformed argon2id hash"},
		{"extra field", "alice:" + refHash + "$x", "malformed argon2id hash"},
		{"order", "alice:" + h("t=2,m=65536,p=1"), "are not m=<KiB>,t=<passes>,p=<lanes>"},
		{"missing p", "alice:" + h("m=65536,t=2"), "are not m=<KiB>,t=<passes>,p=<lanes>"},
		{"keyid", "alice:" + h("m=65536,t=2,p=1,keyid=x"), "are not m=<KiB>,t=<passes>,p=<lanes>"},
		{"leading zero", "alice:" + h("m=065536,t=2,p=1"), `parameter m: "065536" has a leading zero`},
		{"plus sign", "alice:" + h("m=+65536,t=2,p=1"), `parameter m: "+65536" is not a decimal number`},
		{"minus sign", "alice:" + h("m=65536,t=-2,p=1"), `parameter t: "-2" is not a decimal number`},
		{"empty number", "alice:" + h("m=,t=2,p=1"), "parameter m: empty number"},
		{"hex", "alice:" + h("m=0x10,t=2,p=1"), `parameter m: "0x10" has a leading zero`},
		{"overflow", "alice:" + h("m=4294967296,t=2,p=1"), `parameter m: "4294967296" is out of range`},
		{"memory ceiling", "alice:" + h("m=4294967295,t=2,p=1"), "memory m=4294967295 KiB is above the ceiling of 262144 KiB"},
		{"time ceiling", "alice:" + h("m=65536,t=11,p=1"), "passes t=11 are above the ceiling of 10"},
		{"lanes ceiling", "alice:" + h("m=65536,t=2,p=9"), "lanes p=9 are above the ceiling of 8"},
		{"zero passes", "alice:" + h("m=65536,t=0,p=1"), "parameter t must be at least 1"},
		{"zero lanes", "alice:" + h("m=65536,t=2,p=0"), "parameter p must be between 1 and 255"},
		{"lanes overflow", "alice:" + h("m=65536,t=2,p=256"), "parameter p must be between 1 and 255"},
		{"memory below 8p", "alice:" + h("m=15,t=1,p=2"), "parameter m must be at least 8·p = 16"},
		{"padded salt", "alice:$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ=$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "salt: base64 must be unpadded"},
		{"url alphabet", "alice:$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc-", "hash: not canonical unpadded standard base64"},
		{"trailing bits", "alice:$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHR$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "salt: not canonical unpadded standard base64"},
		{"empty salt", "alice:$argon2id$v=19$m=65536,t=2,p=1$$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "salt is 0 bytes (want 8 to 48)"},
		{"short salt", "alice:$argon2id$v=19$m=65536,t=2,p=1$c2hvcnRzYQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "salt is 7 bytes (want 8 to 48)"},
		{"long salt", "alice:$argon2id$v=19$m=65536,t=2,p=1$" + b64.EncodeToString(make([]byte, 49)) + "$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "salt is 49 bytes (want 8 to 48)"},
		{"short hash", "alice:$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$a2tra2tra2tra2s", "hash is 11 bytes (want 12 to 64)"},
		{"long hash", "alice:$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$" + b64.EncodeToString(make([]byte, 65)), "hash is 65 bytes (want 12 to 64)"},
		{"trailing space", "alice:" + refHash + " ", "hash: not canonical"},
		{"crlf", "alice:" + refHash + "\r", "carriage return in line (the file must use LF line endings)"},
		{"control", "alice:" + refHash + "\x1b", "control character 0x1b in line"},
		{"comment after", "alice:" + refHash + " # x", "hash: not canonical"},
		{"bcrypt 2x", "alice:" + strings.Replace(bcryptHash, "$2a$", "$2x$", 1), "unsupported bcrypt variant (want $2a$, $2b$ or $2y$)"},
		{"bcrypt 2", "alice:$2$04$.0jHlt3HHqsMAdXZ3o6YpuJeCSQ1aDR2SkY92EOsgRSEwdqjW/i5", "unsupported bcrypt variant"},
		{"bcrypt short", "alice:" + bcryptHash[:len(bcryptHash)-1], "malformed bcrypt hash (want $2b$<cost>$<53 characters>)"},
		{"bcrypt cost low", "alice:" + strings.Replace(bcryptHash, "$04$", "$03$", 1), "bcrypt cost 3 is below the minimum of 4"},
		{"bcrypt cost high", "alice:" + strings.Replace(bcryptHash, "$04$", "$15$", 1), "bcrypt cost 15 is above the ceiling of 14"},
		{"bcrypt cost letters", "alice:" + strings.Replace(bcryptHash, "$04$", "$a4$", 1), "malformed bcrypt cost"},
		{"bcrypt bad char", "alice:" + strings.Replace(bcryptHash, "/", "+", 1), "malformed bcrypt hash (bad character)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := "# header\n\nbob:" + refHash + "\n" + tt.line + "\ncarol:" + refHash + "\n"
			_, err := parseFile("creds.txt", []byte(content), MaxParams)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want a *ParseError", err)
			}
			if pe.Line != 4 {
				t.Errorf("line %d, want 4", pe.Line)
			}
			if !strings.HasPrefix(err.Error(), "credstore: creds.txt:4: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q\nwant credstore: creds.txt:4: ...%s...", err, tt.want)
			}
			// The same line alone, through the exported parser.
			if _, err := ParseLine(tt.line); err == nil || !strings.HasPrefix(err.Error(), "credstore: ") {
				t.Errorf("ParseLine(%q) = %v, want a credstore error", tt.line, err)
			}
		})
	}
}

func TestParseFileDuplicate(t *testing.T) {
	content := "alice:" + refHash + "\n# x\nbob:" + refHash + "\nalice:" + bcryptHash + ":admin\n"
	_, err := parseFile("creds.txt", []byte(content), MaxParams)
	want := "credstore: creds.txt:4: duplicate user alice (first on line 1)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestParseFileCustomCeiling(t *testing.T) {
	low := Params{Memory: 1024, Time: 2, Threads: 1}
	_, err := parseFile("c", []byte("alice:"+refHash+"\n"), low)
	if err == nil || !strings.Contains(err.Error(), "c:1: user alice: memory m=65536 KiB is above the ceiling of 1024 KiB") {
		t.Fatalf("got %v", err)
	}
}

func TestParseParams(t *testing.T) {
	p, err := ParseParams("m=64,t=1,p=1")
	if err != nil || p != testParams {
		t.Fatalf("got %v, %v", p, err)
	}
	if p.String() != "m=64,t=1,p=1" {
		t.Errorf("String() = %q", p.String())
	}
	for _, bad := range []string{"", "m=64,t=1", "m=64,t=1,p=1,", "M=64,t=1,p=1", "m=64;t=1;p=1", "m= 64,t=1,p=1", "m=64,t=01,p=1"} {
		if _, err := ParseParams(bad); err == nil {
			t.Errorf("ParseParams(%q) succeeded", bad)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	good := []string{"12345678", "correct horse", "pässwörd", "日本語のパスワード", strings.Repeat("x", MaxPasswordLength)}
	for _, pw := range good {
		if err := CheckPassword([]byte(pw)); err != nil {
			t.Errorf("CheckPassword(%q) = %v", pw, err)
		}
	}
	bad := map[string]string{
		"":                                       "empty password",
		"1234567":                                "password is too short (7 characters, at least 8)",
		"äöüäöüä":                                "password is too short (7 characters, at least 8)",
		strings.Repeat("x", MaxPasswordLength+1): "password is longer than 1024 bytes",
		"password\n":                             "password contains a control character or line break",
		"pass\x00word":                           "password contains a control character or line break",
		"pass\xffword":                           "password is not valid UTF-8",
	}
	for pw, want := range bad {
		if err := CheckPassword([]byte(pw)); err == nil || err.Error() != want {
			t.Errorf("CheckPassword(%q) = %v, want %s", pw, err, want)
		}
	}
}

// interopFile is the shape of shared/testvectors/argon2/argon2id_interop.json.
type interopFile struct {
	Cases []struct {
		Comment      string `json:"comment"`
		PasswordUTF8 string `json:"password_utf8"`
		T            uint32 `json:"t"`
		MKiB         uint32 `json:"m_kib"`
		P            uint8  `json:"p"`
		PHC          string `json:"phc"`
	} `json:"cases"`
	NegativeCases []struct {
		Expect       string `json:"expect"`
		PasswordUTF8 string `json:"password_utf8"`
		PHC          string `json:"phc"`
	} `json:"negative_cases"`
}

func loadInterop(t *testing.T) interopFile {
	dir := findTestvectors(t, "argon2")
	data, err := os.ReadFile(filepath.Join(dir, "argon2id_interop.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f interopFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 || len(f.NegativeCases) == 0 {
		t.Fatal("interop file has no cases")
	}
	return f
}

func TestInteropVectors(t *testing.T) {
	f := loadInterop(t)
	for _, c := range f.Cases {
		t.Run(c.Comment, func(t *testing.T) {
			a, err := ParseLine("user:" + c.PHC)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := a.Scheme(), "argon2id "+(Params{c.MKiB, c.T, c.P}).String(); got != want {
				t.Errorf("scheme %q, want %q", got, want)
			}
			if !a.hash.matches([]byte(c.PasswordUTF8)) {
				t.Error("the right password does not verify")
			}
			if a.hash.matches([]byte(c.PasswordUTF8 + "x")) {
				t.Error("a wrong password verifies")
			}
		})
	}
	for _, c := range f.NegativeCases {
		t.Run("negative/"+c.Expect, func(t *testing.T) {
			a, err := ParseLine("user:" + c.PHC)
			if err == nil && a.hash.matches([]byte(c.PasswordUTF8)) {
				t.Fatal("accepted")
			}
			if strings.Contains(c.Expect, "before hashing") && err == nil {
				t.Error("parsed, want a refusal before any hashing")
			}
		})
	}
}

// TestInteropThroughStore runs the cheap positive vectors and every
// negative one through a loaded creds file and Verify.
func TestInteropThroughStore(t *testing.T) {
	f := loadInterop(t)
	for _, c := range f.Cases {
		if c.MKiB > 1024 {
			continue // the expensive ones are covered by TestInteropVectors
		}
		path := filepath.Join(t.TempDir(), "creds.txt")
		writeCreds(t, path, "user:"+c.PHC+"\n")
		s, err := Load(path, &Options{Params: testParams, NoRehash: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(t.Context(), "user", []byte(c.PasswordUTF8)); err != nil {
			t.Errorf("%s: %v", c.Comment, err)
		}
	}
	for _, c := range f.NegativeCases {
		path := filepath.Join(t.TempDir(), "creds.txt")
		writeCreds(t, path, "user:"+c.PHC+"\n")
		s, err := Load(path, &Options{Params: testParams, NoRehash: true})
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line != 1 {
				t.Errorf("%s: %v, want a parse error on line 1", c.Expect, err)
			}
			continue
		}
		if err := s.Verify(t.Context(), "user", []byte(c.PasswordUTF8)); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("%s: Verify = %v, want ErrAuthFailed", c.Expect, err)
		}
	}
}

// TestShippedCredsFile: the creds.txt in the repository root parses.
func TestShippedCredsFile(t *testing.T) {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(filepath.Dir(dir), "creds.txt")
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "go.mod")); err != nil {
		t.Fatalf("repository root not found beside %s: %v", dir, err)
	}
	if _, err := ReadFile(path); err != nil {
		t.Fatal(err)
	}
}

// TestParseErrorsNeverShowHash: a misplaced field must not put a hash, or
// a piece of one, into an error message (which reaches logs and terminals).
func TestParseErrorsNeverShowHash(t *testing.T) {
	salt, key := "c29tZXNhbHQ", "CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	bcryptTail := bcryptHash[7:]
	lines := []string{
		"al:ice:" + refHash,
		"al:ice:" + bcryptHash,
		"alice:" + refHash + ":" + refHash,
		"alice:x:" + bcryptHash,
		refHash + ":alice",
		bcryptHash + ":alice",
		refHash,
		"alice:$argon2id$" + key + "$m=65536,t=2,p=1$" + salt + "$" + key,
		"alice:$argon2id$v=19$" + salt + "$" + salt + "$" + key,
		"alice:$argon2id$v=19$" + key + "$" + salt + "$" + key,
		"alice:" + refHash + ":" + key,
	}
	for _, line := range lines {
		_, err := parseFile("creds.txt", []byte(line+"\n"), MaxParams)
		if err == nil {
			t.Errorf("%q parsed", line)
			continue
		}
		msg := err.Error()
		for _, secret := range []string{salt, key, key[:12], bcryptTail, bcryptTail[:12]} {
			if strings.Contains(msg, secret) {
				t.Errorf("error for %q shows hash text %q: %s", line, secret, msg)
			}
		}
	}
	_, err := parseFile("creds.txt", []byte("al:ice:"+refHash+"\n"), MaxParams)
	if err == nil || !strings.Contains(err.Error(), "a user name cannot contain ':'") {
		t.Errorf("':' in a name: %v, want a hint at the ':'", err)
	}
}
