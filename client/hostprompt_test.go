package client

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testFingerprint = "SHA256:htpMMA9o7zKV6BpwAzm2HmF0VOMF7MJc3io4oxB2Vgs"

func TestAskHostKey(t *testing.T) {
	const (
		question = "Are you sure you want to continue connecting (yes/no/[fingerprint])? "
		reask    = "Please type 'yes', 'no' or the fingerprint: "
	)
	tests := []struct {
		name    string
		input   string
		ok      bool
		err     string // substring; "" for no error
		reasks  int
		mention string // extra text the output must contain
	}{
		{name: "yes", input: "yes\n", ok: true},
		{name: "yes any case, spaces, CRLF", input: "  Yes \r\n", ok: true},
		{name: "yes without newline", input: "yes", ok: true},
		{name: "no", input: "no\n", ok: false},
		{name: "NO", input: "NO\n", ok: false},
		{name: "fingerprint", input: testFingerprint + "\n", ok: true},
		{name: "wrong then yes", input: "maybe\nyes\n", ok: true, reasks: 1},
		{name: "empty then no", input: "\nno\n", ok: false, reasks: 1},
		{name: "wrong fingerprint", input: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\nno\n", ok: false, reasks: 1,
			mention: "does not match"},
		{name: "fingerprint in other case", input: strings.ToLower(testFingerprint) + "\nno\n", ok: false, reasks: 1},
		{name: "y is not yes", input: "y\nno\n", ok: false, reasks: 1},
		{name: "eof", input: "", err: "no answer"},
		{name: "wrong then eof", input: "what\n", err: "no answer", reasks: 1},
		{name: "too many", input: strings.Repeat("what\n", maxHostKeyAnswers) + "yes\n", err: "too many",
			reasks: maxHostKeyAnswers - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			ok, err := AskHostKey(strings.NewReader(tt.input), &out, "chat.example.org", "192.0.2.7:7443", testFingerprint)
			if ok != tt.ok {
				t.Errorf("accepted = %v, want %v", ok, tt.ok)
			}
			if (err != nil) != (tt.err != "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("err = %v, want containing %q", err, tt.err)
			}
			o := out.String()
			head := "The authenticity of host 'chat.example.org (192.0.2.7:7443)' can't be established.\n" +
				"ED25519 key fingerprint is " + testFingerprint + ".\n" + question
			if !strings.HasPrefix(o, head) {
				t.Errorf("output does not start with the OpenSSH question:\n%s", o)
			}
			if got := strings.Count(o, reask); got != tt.reasks {
				t.Errorf("asked again %d times, want %d:\n%s", got, tt.reasks, o)
			}
			if strings.Contains(o, "Permanently added") {
				t.Errorf("AskHostKey printed the note that is the caller's to print:\n%s", o)
			}
			if tt.mention != "" && !strings.Contains(o, tt.mention) {
				t.Errorf("output lacks %q:\n%s", tt.mention, o)
			}
		})
	}
}

func TestAskHostKeyReadsOnlyItsLine(t *testing.T) {
	in := strings.NewReader("yes\nnext line\n")
	if ok, err := AskHostKey(in, io.Discard, "h", "a", testFingerprint); !ok || err != nil {
		t.Fatalf("AskHostKey = %v, %v", ok, err)
	}
	rest, _ := io.ReadAll(in)
	if string(rest) != "next line\n" {
		t.Errorf("left %q in the reader, want %q", rest, "next line\n")
	}
}

func TestAskHostKeyReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := AskHostKey(io.MultiReader(strings.NewReader("ma"), errReader{boom}), io.Discard, "h", "a", testFingerprint)
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want wrapping %v", err, boom)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestAskHostKeySanitises(t *testing.T) {
	var out bytes.Buffer
	host := "evil\x1b[2J\x1b]0;x\a" + strings.Repeat("h", 300)
	AskHostKey(strings.NewReader("no\n"), &out, host, "addr\x1b[1m", "SHA256:\x1b[31mfake")
	if strings.ContainsAny(out.String(), "\x1b\a") {
		t.Errorf("control characters reached the prompt: %q", out.String())
	}
	if !strings.Contains(out.String(), "'evil"+strings.Repeat("h", 196)+" (addr)'") {
		t.Errorf("host not shortened to 200 bytes: %q", out.String())
	}
	// No address: just the host.
	out.Reset()
	AskHostKey(strings.NewReader("no\n"), &out, "h.example", "", testFingerprint)
	if !strings.HasPrefix(out.String(), "The authenticity of host 'h.example' can't be established.\n") {
		t.Errorf("without address: %q", out.String())
	}
}

func TestHostKeyAddedMessage(t *testing.T) {
	want := "Warning: Permanently added 'chat.example.org:7443' (ED25519) to the list of known hosts.\n"
	if got := HostKeyAddedMessage("chat.example.org:7443"); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := HostKeyAddedMessage("h\x1b]0;x\a"); got != "Warning: Permanently added 'h' (ED25519) to the list of known hosts.\n" {
		t.Errorf("not sanitised: %q", got)
	}
}

func TestHostKeyChangedMessage(t *testing.T) {
	file := "/home/u/.config/securechat/known_hosts"
	msg := HostKeyChangedMessage("chat.example.org:7443", testFingerprint, file, 7)
	for _, want := range []string{
		"@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n" +
			"@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n" +
			"@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n",
		"IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n",
		"'chat.example.org:7443'",
		"\n" + testFingerprint + ".\n",
		"Offending ED25519 key in " + file + ":7\n",
		"delete line 7 of " + file,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if !strings.HasPrefix(msg, "@@@") || !strings.HasSuffix(msg, "\nHost key verification failed.\n") {
		t.Errorf("message must open with the banner and end with the failure line:\n%s", msg)
	}
	if m := HostKeyChangedMessage("h\x1b[2J", "fp\a", "f\x1b]0;x\a", 1); strings.ContainsAny(m, "\x1b\a") {
		t.Errorf("control characters in %q", m)
	}
}

func TestReadPasswordTTYWithoutTerminal(t *testing.T) {
	old := ttyPath
	t.Cleanup(func() { ttyPath = old })

	ttyPath = filepath.Join(t.TempDir(), "no-such-tty")
	if _, err := readPasswordTTY("Password: "); err == nil || !strings.Contains(err.Error(), "no terminal") {
		t.Errorf("missing tty: err = %v, want one saying there is no terminal", err)
	}

	ttyPath = filepath.Join(t.TempDir(), "plain-file")
	if err := os.WriteFile(ttyPath, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw, err := readPasswordTTY("Password: ")
	if err == nil || !strings.Contains(err.Error(), "not a terminal") || pw != nil {
		t.Errorf("regular file: %q, %v; want an error saying it is not a terminal", pw, err)
	}
	if b, _ := os.ReadFile(ttyPath); string(b) != "hunter2\n" {
		t.Errorf("the prompt was written to a non-terminal: %q", b)
	}
}
