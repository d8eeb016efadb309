package handshake

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func pub(name string) ed25519.PublicKey { return testHostKey(name).Public().(ed25519.PublicKey) }

func TestKnownHostsAddAndMatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dir", "known_hosts")
	kh, err := LoadKnownHosts(path)
	if err != nil || len(kh.Hosts) != 0 {
		t.Fatalf("missing file: %v, %d hosts", err, len(kh.Hosts))
	}
	if err := kh.Add("chat.example:7000", pub("a")); err != nil {
		t.Fatal(err)
	}
	if err := kh.Add("[::1]:7000", pub("b")); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, fi.Mode().Perm(), err, want)
		}
	}
	kh, err = LoadKnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := kh.Check("chat.example:7000", pub("a")); err != nil {
		t.Errorf("known key: %v", err)
	}
	if err := kh.Check("[::1]:7000", pub("b")); err != nil {
		t.Errorf("known key: %v", err)
	}
	var unknown *HostKeyUnknownError
	if err := kh.Check("chat.example:7001", pub("a")); !errors.As(err, &unknown) {
		t.Errorf("other port: %v, want unknown", err)
	}
	var changed *HostKeyChangedError
	err = kh.Check("[::1]:7000", pub("c"))
	if !errors.As(err, &changed) || changed.Line != 2 || changed.File != path {
		t.Fatalf("changed key: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("%s:2", path)) || !strings.Contains(msg, Fingerprint(pub("b"))) ||
		!strings.Contains(msg, Fingerprint(pub("c"))) {
		t.Errorf("message %q must name file:line and both fingerprints", msg)
	}
	data, _ := os.ReadFile(path)
	want := FormatKnownHost("chat.example:7000", pub("a")) + "\n" + FormatKnownHost("[::1]:7000", pub("b")) + "\n"
	if string(data) != want {
		t.Errorf("file:\n%s\nwant:\n%s", data, want)
	}
}

func TestKnownHostsAppendAfterMissingNewline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(path, []byte("# comment\n\n"+FormatKnownHost("a:1", pub("a"))), 0o600)
	kh, err := LoadKnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := kh.Add("b:2", pub("b")); err != nil {
		t.Fatal(err)
	}
	if got := kh.Hosts[len(kh.Hosts)-1].Line; got != 4 {
		t.Errorf("new entry at line %d, want 4", got)
	}
	kh, err = LoadKnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(kh.Hosts) != 2 || kh.Hosts[0].Line != 3 || kh.Hosts[1].Line != 4 {
		t.Errorf("hosts %+v", kh.Hosts)
	}
}

func TestKnownHostsMalformed(t *testing.T) {
	good := FormatKnownHost("a:1", pub("a"))
	for name, tc := range map[string]struct {
		text string
		line int
	}{
		"two fields":    {good + "\nb:2 securechat-ed25519\n", 2},
		"four fields":   {"# c\n" + good + " extra\n", 2},
		"bad type":      {"a:1 ssh-ed25519 " + strings.Fields(good)[2] + "\n", 1},
		"bad base64":    {"\n\na:1 securechat-ed25519 ***\n", 3},
		"short key":     {"a:1 securechat-ed25519 AAAA\n", 1},
		"no port":       {"example.com securechat-ed25519 " + strings.Fields(good)[2] + "\n", 1},
		"unbracketed 6": {"::1:7000 securechat-ed25519 " + strings.Fields(good)[2] + "\n", 1},
		"other marker":  {"@cert-authority " + good + "\n", 1},
		"bare marker":   {"@revoked\n", 1},
		"star, valid":   {"* securechat-ed25519 " + strings.Fields(good)[2] + "\n", 1},
		"revoked short": {"@revoked a:1 securechat-ed25519 AAAA\n", 1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseKnownHosts(strings.NewReader(tc.text), "/home/u/.securechat/known_hosts")
			want := fmt.Sprintf("handshake: known_hosts /home/u/.securechat/known_hosts:%d: ", tc.line)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("got %v, want prefix %q", err, want)
			}
		})
	}
}

// runCallback runs a KnownHostsChecker's Check against a key and, if it
// passes, Record (as a handshake does once the server has proved the key).
// It reports the error, whether ask was called and the file afterwards.
func runCallback(t *testing.T, initial string, policy HostKeyPolicy, pinned string, answer bool, key ed25519.PublicKey) (asked bool, file string, err error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_hosts")
	if initial != "" {
		os.WriteFile(path, []byte(initial), 0o600)
	}
	k, err := NewKnownHostsChecker(path, "chat.example:7000", policy, pinned, func(hp, fp string) (bool, error) {
		asked = true
		if hp != "chat.example:7000" || fp != Fingerprint(key) {
			t.Errorf("asked about %s %s", hp, fp)
		}
		return answer, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err = k.Check(key); err == nil {
		before, _ := os.ReadFile(path)
		if string(before) != initial {
			t.Errorf("Check wrote the file: %q", before)
		}
		_, err = k.Record(key)
	}
	data, _ := os.ReadFile(path)
	return asked, string(data), err
}

func TestKnownHostsCheckerPolicies(t *testing.T) {
	line := FormatKnownHost("chat.example:7000", pub("a")) + "\n"
	var unknown *HostKeyUnknownError
	var changed *HostKeyChangedError
	var pinErr *PinnedKeyMismatchError

	t.Run("known", func(t *testing.T) {
		for _, p := range []HostKeyPolicy{PolicyAsk, PolicyAcceptNew, PolicyStrict} {
			asked, file, err := runCallback(t, line, p, "", false, pub("a"))
			if err != nil || asked || file != line {
				t.Errorf("%v: %v asked=%v file=%q", p, err, asked, file)
			}
		}
	})
	t.Run("changed is always fatal", func(t *testing.T) {
		for _, p := range []HostKeyPolicy{PolicyAsk, PolicyAcceptNew, PolicyStrict} {
			asked, file, err := runCallback(t, line, p, "", true, pub("b"))
			if !errors.As(err, &changed) || asked || file != line {
				t.Errorf("%v: %v asked=%v file=%q", p, err, asked, file)
			}
		}
		// Even with a pin that matches the new key.
		_, file, err := runCallback(t, line, PolicyAcceptNew, Fingerprint(pub("b")), true, pub("b"))
		if !errors.As(err, &changed) || file != line {
			t.Errorf("pinned: %v, file %q", err, file)
		}
	})
	t.Run("strict unknown", func(t *testing.T) {
		asked, file, err := runCallback(t, "", PolicyStrict, "", true, pub("a"))
		if !errors.As(err, &unknown) || asked || file != "" || unknown.Fingerprint != Fingerprint(pub("a")) {
			t.Errorf("%v asked=%v file=%q", err, asked, file)
		}
	})
	t.Run("accept-new appends", func(t *testing.T) {
		asked, file, err := runCallback(t, "", PolicyAcceptNew, "", false, pub("a"))
		if err != nil || asked || file != line {
			t.Errorf("%v asked=%v file=%q", err, asked, file)
		}
	})
	t.Run("ask yes", func(t *testing.T) {
		asked, file, err := runCallback(t, "", PolicyAsk, "", true, pub("a"))
		if err != nil || !asked || file != line {
			t.Errorf("%v asked=%v file=%q", err, asked, file)
		}
	})
	t.Run("ask no", func(t *testing.T) {
		asked, file, err := runCallback(t, "", PolicyAsk, "", false, pub("a"))
		if !errors.Is(err, ErrHostKeyRejected) || !asked || file != "" {
			t.Errorf("%v asked=%v file=%q", err, asked, file)
		}
	})
	t.Run("pinned match records", func(t *testing.T) {
		asked, file, err := runCallback(t, "", PolicyStrict, Fingerprint(pub("a")), false, pub("a"))
		if err != nil || asked || file != line {
			t.Errorf("%v asked=%v file=%q", err, asked, file)
		}
	})
	t.Run("pinned mismatch", func(t *testing.T) {
		asked, file, err := runCallback(t, "", PolicyAsk, Fingerprint(pub("b")), true, pub("a"))
		if !errors.As(err, &pinErr) || asked || file != "" || pinErr.Want != Fingerprint(pub("b")) {
			t.Errorf("%v asked=%v file=%q", err, asked, file)
		}
	})
	t.Run("pinned mismatch with known key", func(t *testing.T) {
		_, _, err := runCallback(t, line, PolicyAsk, Fingerprint(pub("b")), true, pub("a"))
		if !errors.As(err, &pinErr) {
			t.Errorf("%v", err)
		}
	})
	t.Run("malformed file", func(t *testing.T) {
		asked, _, err := runCallback(t, line+"junk\n", PolicyAcceptNew, "", true, pub("a"))
		if err == nil || asked || !strings.Contains(err.Error(), ":2: ") {
			t.Errorf("%v asked=%v", err, asked)
		}
	})
}

func TestKnownHostsCheckerArguments(t *testing.T) {
	ask := func(string, string) (bool, error) { return true, nil }
	for name, f := range map[string]func() error{
		"bad pin": func() error {
			_, err := NewKnownHostsChecker("kh", "a:1", PolicyAsk, "MD5:xx", ask)
			return err
		},
		"bad hostport": func() error {
			_, err := NewKnownHostsChecker("kh", "a", PolicyAsk, "", ask)
			return err
		},
		"ask without func": func() error {
			_, err := NewKnownHostsChecker("kh", "a:1", PolicyAsk, "", nil)
			return err
		},
	} {
		if err := f(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, s := range []string{"ask", "accept-new", "strict"} {
		p, err := ParseHostKeyPolicy(s)
		if err != nil || p.String() != s {
			t.Errorf("ParseHostKeyPolicy(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParseHostKeyPolicy("yes"); err == nil {
		t.Error("accepted an unknown policy")
	}
}

func TestFixedHostKey(t *testing.T) {
	cb := FixedHostKey(pub("a"))
	if err := cb(pub("a")); err != nil {
		t.Error(err)
	}
	var pinErr *PinnedKeyMismatchError
	err := cb(pub("b"))
	if !errors.As(err, &pinErr) || pinErr.Got != Fingerprint(pub("b")) || strings.Contains(err.Error(), "  ") {
		t.Errorf("got %v", err)
	}
}

// TestKnownHostsRevoked: a key marked @revoked, for its host:port or for
// every host, is refused under every policy and whatever pin, even where
// another line lists it as valid; nothing is asked or recorded.
func TestKnownHostsRevoked(t *testing.T) {
	valid := FormatKnownHost("chat.example:7000", pub("a")) + "\n"
	other := FormatKnownHost("chat.example:7000", pub("b")) + "\n"
	for name, initial := range map[string]string{
		"listed and revoked":       valid + revokedMarker + " " + valid,
		"revoked for every host":   revokedMarker + " * " + strings.SplitN(valid, " ", 2)[1] + valid,
		"revoked, host lists more": other + revokedMarker + "\t" + valid,
		"revoked, host not listed": "# c\n" + revokedMarker + " " + valid,
	} {
		for _, policy := range []HostKeyPolicy{PolicyAsk, PolicyAcceptNew, PolicyStrict} {
			for _, pinned := range []string{"", Fingerprint(pub("a"))} {
				asked, file, err := runCallback(t, initial, policy, pinned, true, pub("a"))
				var rev *HostKeyRevokedError
				if !errors.As(err, &rev) || !strings.Contains(err.Error(), "REVOKED") || asked || file != initial {
					t.Errorf("%s, %v, pin %q: err %v, asked %v, file changed %v; want REVOKED, untouched",
						name, policy, pinned, err, asked, file != initial)
				}
			}
		}
	}
	// A revocation for another host leaves this one alone.
	initial := valid + revokedMarker + " " + FormatKnownHost("elsewhere.example:7000", pub("a")) + "\n"
	if _, _, err := runCallback(t, initial, PolicyStrict, "", false, pub("a")); err != nil {
		t.Errorf("key revoked for another host refused here: %v", err)
	}
}

// TestRemoveKnownHost: every line for the host goes, the rest stays as
// written (comments, other hosts, revocations), the file keeps mode 0600,
// and a host that is not listed leaves the file untouched.
func TestRemoveKnownHost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	a1 := FormatKnownHost("chat.example:7000", pub("a"))
	a2 := FormatKnownHost("chat.example:7000", pub("b"))
	keep := "# my servers\n\n" + FormatKnownHost("chat.example:7001", pub("a")) + "\n" +
		revokedMarker + " " + FormatKnownHost("chat.example:7000", pub("c")) + "\n" +
		FormatKnownHost("[::1]:7000", pub("a")) + "\n"
	initial := a1 + "\n" + keep[:14] + "  " + a2 + "\n" + keep[14:]
	if err := os.WriteFile(path, []byte(initial), 0o644); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveKnownHost(path, "chat.example:7000")
	if err != nil {
		t.Fatal(err)
	}
	want := []RemovedLine{{Line: 1, Text: a1}, {Line: 4, Text: "  " + a2}}
	if fmt.Sprint(removed) != fmt.Sprint(want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if b, _ := os.ReadFile(path); string(b) != keep {
		t.Errorf("file after removal:\n%s\nwant:\n%s", b, keep)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after removal: %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 2 {
		t.Errorf("%d files in the directory, want only known_hosts and its lock (no temporary file left)", len(entries))
	}
	removed, err = RemoveKnownHost(path, "chat.example:7000")
	if err != nil || len(removed) != 0 {
		t.Errorf("second removal: %v, %v; want nothing", removed, err)
	}
	if _, err := RemoveKnownHost(path, "no-port"); err == nil {
		t.Error("a host without a port was accepted")
	}
	if _, err := RemoveKnownHost(filepath.Join(t.TempDir(), "missing"), "a:1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want not exist", err)
	}
}

// TestKnownHostsAddDuringRemove: a client recording a key while
// "securechat keys known-hosts remove" rewrites the file must not lose its
// line to the rename (both hold the file's lock).
func TestKnownHostsAddDuringRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	const hosts = 40
	var wg sync.WaitGroup
	wg.Go(func() {
		for range hosts {
			if err := (&KnownHosts{File: path}).Add("gone.example:1", pub("x")); err != nil {
				t.Error(err)
				return
			}
			if _, err := RemoveKnownHost(path, "gone.example:1"); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := range hosts {
		wg.Go(func() {
			if err := (&KnownHosts{File: path}).Add(fmt.Sprintf("h%d.example:1", i), pub("a")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	kh, err := LoadKnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range hosts {
		if h := fmt.Sprintf("h%d.example:1", i); len(kh.Lookup(h)) != 1 {
			t.Errorf("%s: %d lines, want 1 (an append was lost to a removal)", h, len(kh.Lookup(h)))
		}
	}
	if n := len(kh.Lookup("gone.example:1")); n != 0 {
		t.Errorf("gone.example:1 still has %d lines", n)
	}
}
