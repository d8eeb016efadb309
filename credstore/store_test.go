package credstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"golang.org/x/crypto/bcrypt"
)

// storeParams are the "current defaults" of stores in these tests: cheap,
// but above testParams so that testParams hashes count as weak.
var storeParams = Params{Memory: 128, Time: 2, Threads: 1}

func loadStore(t *testing.T, content string, opts *Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "creds.txt")
	writeCreds(t, path, content)
	if opts == nil {
		opts = &Options{Params: storeParams}
	}
	s, err := Load(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func TestLoadRefusesOpenMode(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		path := filepath.Join(t.TempDir(), "creds.txt")
		writeCreds(t, path, "# none\n")
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path, nil)
		var me *ModeError
		if !errors.As(err, &me) || me.Mode.Perm() != mode {
			t.Fatalf("mode %04o: got %v, want a *ModeError", mode, err)
		}
		for _, want := range []string{path, "too open", "chmod 600 " + path} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		path := filepath.Join(t.TempDir(), "creds.txt")
		writeCreds(t, path, "# none\n")
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path, nil); err != nil {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.txt"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, nil); err == nil || !strings.Contains(err.Error(), "is not a regular file") {
		t.Errorf("directory: %v", err)
	}
	path := filepath.Join(dir, "creds.txt")
	writeCreds(t, path, "alice:"+refHash+"\nbob:"+refHash+":owner\n")
	_, err := Load(path, nil)
	want := "credstore: " + path + `:2: unknown role "owner" (the only role is admin)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if _, err := Load(path, &Options{Params: Params{Memory: 64, Time: 0, Threads: 1}}); err == nil {
		t.Error("zero passes as default parameters accepted")
	}
	if _, err := Load(path, &Options{Params: Params{Memory: 1 << 20, Time: 1, Threads: 1}}); err == nil {
		t.Error("default parameters above the ceiling accepted")
	}
}

func TestVerify(t *testing.T) {
	alice := mustAccount(t, "alice", RoleAdmin, "alice-password", storeParams)
	s, _ := loadStore(t, "# c\n"+alice.String()+"\nbob:"+bcryptHash+"\n", nil)
	ctx := t.Context()

	if err := s.Verify(ctx, "alice", []byte("alice-password")); err != nil {
		t.Errorf("right password: %v", err)
	}
	err := s.Verify(ctx, "alice", []byte("alice-passwore"))
	if !errors.Is(err, ErrAuthFailed) || !strings.Contains(err.Error(), "wrong password for user alice") {
		t.Errorf("wrong password: %v", err)
	}
	err = s.Verify(ctx, "mallory", []byte("alice-password"))
	if !errors.Is(err, ErrAuthFailed) || !strings.Contains(err.Error(), `unknown user "mallory"`) {
		t.Errorf("unknown user: %v", err)
	}
	if strings.Contains(err.Error(), "alice-password") {
		t.Errorf("error %q contains the password", err)
	}
	for _, user := range []string{"", "ALICE", "alice\n", strings.Repeat("a", 1000)} {
		if err := s.Verify(ctx, user, []byte("alice-password")); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("user %q: %v", user, err)
		}
	}
	if err := s.Verify(ctx, "alice", nil); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("empty password: %v", err)
	}
	if role, ok := s.Role("alice"); !ok || role != RoleAdmin {
		t.Errorf("Role(alice) = %v, %v", role, ok)
	}
	if role, ok := s.Role("bob"); !ok || role != RoleUser {
		t.Errorf("Role(bob) = %v, %v", role, ok)
	}
	if _, ok := s.Role("mallory"); ok {
		t.Error("Role(mallory) exists")
	}
	if got := s.Users(); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Errorf("Users() = %v", got)
	}
}

// TestDummyUsesCurrentDefaults: unknown users must cost what a current
// hash costs (PW-4), whatever the defaults are.
func TestDummyUsesCurrentDefaults(t *testing.T) {
	for _, p := range []Params{storeParams, {Memory: 256, Time: 3, Threads: 2}} {
		s, _ := loadStore(t, "", &Options{Params: p})
		if s.dummy.params != p || len(s.dummy.salt) != saltSize || len(s.dummy.key) != keySize {
			t.Errorf("dummy %v with %d/%d bytes, want %v", s.dummy.params, len(s.dummy.salt), len(s.dummy.key), p)
		}
		var hashed atomic.Int32
		s.testHookHash = func(enter bool, _ *passwordHash) {
			if enter {
				hashed.Add(1)
			}
		}
		if err := s.Verify(t.Context(), "nobody", []byte("x")); !errors.Is(err, ErrAuthFailed) {
			t.Fatal(err)
		}
		if hashed.Load() != 1 {
			t.Errorf("unknown user ran %d hashes, want 1", hashed.Load())
		}
	}
	s, _ := loadStore(t, "", nil)
	if s.dummy.params != storeParams {
		t.Error("dummy ignores Options.Params")
	}
	s2, _ := loadStore(t, "", &Options{})
	if s2.dummy.params != DefaultParams {
		t.Errorf("zero Options: dummy at %v, want DefaultParams", s2.dummy.params)
	}
}

func TestRehashBcrypt(t *testing.T) {
	carol := mustAccount(t, "carol", RoleUser, "carol-password", storeParams)
	content := "# team\n\ncarol:" + carol.hash.text + "\nbob:" + bcryptHash + ":admin\n# end\n"
	var logs bytes.Buffer
	s, path := loadStore(t, content, &Options{Params: storeParams, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "users=[bob]") {
		t.Errorf("the weak hash was not reported at load: %q", logs.String())
	}

	if err := s.Verify(t.Context(), "bob", []byte("wrong-password")); !errors.Is(err, ErrAuthFailed) {
		t.Fatal(err)
	}
	if readText(t, path) != content {
		t.Fatal("a failed login changed the file")
	}
	if err := s.Verify(t.Context(), "bob", []byte(bcryptPass)); err != nil {
		t.Fatal(err)
	}
	got := readText(t, path)
	lines := strings.Split(got, "\n")
	want := strings.Split(content, "\n")
	if len(lines) != len(want) {
		t.Fatalf("file has %d lines, want %d:\n%s", len(lines), len(want), got)
	}
	for i := range want {
		if i == 3 {
			continue
		}
		if lines[i] != want[i] {
			t.Errorf("line %d changed: %q, want %q", i+1, lines[i], want[i])
		}
	}
	bob, err := ParseLine(lines[3])
	if err != nil {
		t.Fatal(err)
	}
	if bob.Name != "bob" || bob.Role != RoleAdmin || bob.Scheme() != "argon2id "+storeParams.String() {
		t.Errorf("rehashed line %q", lines[3])
	}
	if !bob.hash.matches([]byte(bcryptPass)) {
		t.Error("new hash does not match the password")
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("mode after rehash: %v %v", info.Mode(), err)
	}
	// In memory too: the next login verifies against the new hash and
	// does not rehash again.
	var hashes atomic.Int32
	s.testHookHash = func(enter bool, _ *passwordHash) {
		if enter {
			hashes.Add(1)
		}
	}
	if err := s.Verify(t.Context(), "bob", []byte(bcryptPass)); err != nil {
		t.Fatal(err)
	}
	if hashes.Load() != 1 || readText(t, path) != got {
		t.Errorf("second login: %d hashes, file changed %v", hashes.Load(), readText(t, path) != got)
	}
	if !strings.Contains(logs.String(), "user=bob") || strings.Contains(logs.String(), bcryptPass) {
		t.Errorf("log: %q", logs.String())
	}
	// A reload after the rehash sees no change for bob.
	d, err := s.Reload()
	if err != nil || len(d.Added)+len(d.Removed)+len(d.Changed) != 0 {
		t.Errorf("Reload after rehash: %+v %v", d, err)
	}
}

func TestRehashWeakArgon2id(t *testing.T) {
	weak := mustAccount(t, "weak", RoleUser, "weak-password", testParams)
	lowT := mustAccount(t, "lowt", RoleUser, "lowt-password", Params{Memory: 256, Time: 1, Threads: 1})
	strong := mustAccount(t, "strong", RoleUser, "strong-password", Params{Memory: 256, Time: 2, Threads: 1})
	lanes := mustAccount(t, "lanes", RoleUser, "lanes-password", Params{Memory: 128, Time: 2, Threads: 2})
	content := weak.String() + "\n" + lowT.String() + "\n" + strong.String() + "\n" + lanes.String() + "\n"
	s, path := loadStore(t, content, nil)

	for _, c := range []struct {
		name    string
		rehash  bool
		oldLine string
	}{
		{"weak", true, weak.String()},
		{"lowt", true, lowT.String()},
		{"strong", false, strong.String()},
		{"lanes", false, lanes.String()},
	} {
		if err := s.Verify(t.Context(), c.name, []byte(c.name+"-password")); err != nil {
			t.Fatal(err)
		}
		f, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := f.Lookup(c.name)
		if rehashed := a.String() != c.oldLine; rehashed != c.rehash {
			t.Errorf("%s: rehashed %v, want %v (%s)", c.name, rehashed, c.rehash, a.Scheme())
		}
		if c.rehash && a.Scheme() != "argon2id "+storeParams.String() {
			t.Errorf("%s: rehashed to %s", c.name, a.Scheme())
		}
	}
	// A short tag or salt is weak too.
	short := "short:$argon2id$v=19$m=128,t=2,p=1$c29tZXNhbHQ$" + b64.EncodeToString(make([]byte, 16))
	if a, err := ParseLine(short); err != nil || !a.NeedsRehash(storeParams) {
		t.Errorf("8-byte salt and 16-byte tag: NeedsRehash false (%v)", err)
	}
}

func TestNoRehashOption(t *testing.T) {
	s, path := loadStore(t, "bob:"+bcryptHash+"\n", &Options{Params: storeParams, NoRehash: true})
	if err := s.Verify(t.Context(), "bob", []byte(bcryptPass)); err != nil {
		t.Fatal(err)
	}
	if readText(t, path) != "bob:"+bcryptHash+"\n" {
		t.Error("NoRehash store rewrote the file")
	}
}

// TestRehashYieldsToConcurrentEdit: if the line changes between the login
// and the rewrite, the newer edit wins.
func TestRehashYieldsToConcurrentEdit(t *testing.T) {
	s, path := loadStore(t, "bob:"+bcryptHash+"\n", nil)
	newer := mustAccount(t, "bob", RoleUser, "changed-password", storeParams)
	var calls int
	s.testHookHash = func(enter bool, _ *passwordHash) {
		if calls++; calls == 3 { // entering the rehash computation
			if err := Edit(path, func(f *File) error { return f.Replace(newer) }); err != nil {
				t.Error(err)
			}
		}
	}
	if err := s.Verify(t.Context(), "bob", []byte(bcryptPass)); err != nil {
		t.Fatal(err)
	}
	if got := readText(t, path); got != newer.String()+"\n" {
		t.Errorf("file %q, want the concurrent edit kept", got)
	}
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(t.Context(), "bob", []byte("changed-password")); err != nil {
		t.Error(err)
	}
}

// TestRehashWriteFailure: a failed rewrite does not fail the login, is
// logged, and is not retried (so each login costs one hash) until a reload.
func TestRehashWriteFailure(t *testing.T) {
	var logs bytes.Buffer
	s, path := loadStore(t, "bob:"+bcryptHash+"\n", &Options{Params: storeParams, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	var calls atomic.Int32
	s.testHookHash = func(enter bool, _ *passwordHash) {
		if calls.Add(1) == 3 { // the rehash: break the file under it
			writeCreds(t, path, "bob:"+bcryptHash+"\nbroken\n")
		}
	}
	if err := s.Verify(t.Context(), "bob", []byte(bcryptPass)); err != nil {
		t.Fatalf("login failed with the rehash: %v", err)
	}
	if !strings.Contains(logs.String(), "cannot upgrade password hash") || !strings.Contains(logs.String(), "user=bob") {
		t.Errorf("log %q", logs.String())
	}
	calls.Store(10)
	if err := s.Verify(t.Context(), "bob", []byte(bcryptPass)); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load() - 10; n != 2 {
		t.Errorf("second login ran %d hook calls, want 2 (one hash, no retry)", n)
	}
	if _, err := s.Reload(); err == nil {
		t.Fatal("reload of a broken file succeeded")
	}
	writeCreds(t, path, "bob:"+bcryptHash+"\n")
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(t.Context(), "bob", []byte(bcryptPass)); err != nil {
		t.Fatal(err)
	}
	if a, err := ParseLine(strings.TrimSuffix(readText(t, path), "\n")); err != nil || a.Scheme() != "argon2id "+storeParams.String() {
		t.Errorf("after reload the rehash was not retried: %v %v", a.Scheme(), err)
	}
}

func TestReload(t *testing.T) {
	alice := mustAccount(t, "alice", RoleUser, "alice-password", storeParams)
	bob := mustAccount(t, "bob", RoleUser, "bob-password", storeParams)
	carol := mustAccount(t, "carol", RoleUser, "carol-password", storeParams)
	dave := mustAccount(t, "dave", RoleUser, "dave-password", storeParams)
	s, path := loadStore(t, alice.String()+"\n"+bob.String()+"\n"+carol.String()+"\n", nil)

	bob2 := mustAccount(t, "bob", RoleUser, "bob-new-password", storeParams)
	carolAdmin := carol
	carolAdmin.Role = RoleAdmin
	writeCreds(t, path, bob2.String()+"\n"+carolAdmin.String()+"\n"+dave.String()+"\n")
	d, err := s.Reload()
	if err != nil {
		t.Fatal(err)
	}
	want := Diff{Added: []string{"dave"}, Removed: []string{"alice"}, Changed: []string{"bob", "carol"},
		Password: []string{"bob"}, Role: []string{"carol"}}
	if !slices.Equal(d.Added, want.Added) || !slices.Equal(d.Removed, want.Removed) || !slices.Equal(d.Changed, want.Changed) ||
		!slices.Equal(d.Password, want.Password) || !slices.Equal(d.Role, want.Role) {
		t.Errorf("diff %+v, want %+v", d, want)
	}
	if err := s.Verify(t.Context(), "alice", []byte("alice-password")); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("removed user: %v", err)
	}
	if err := s.Verify(t.Context(), "bob", []byte("bob-new-password")); err != nil {
		t.Errorf("changed password: %v", err)
	}
	if role, _ := s.Role("carol"); role != RoleAdmin {
		t.Error("role change not in force")
	}

	// A bad file keeps the old set.
	for _, bad := range []string{
		dave.String() + "\n" + dave.String() + "\n",
		"eve:$argon2id$v=19$m=4294967295,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc\n",
		"# only a comment\nEVE:" + refHash + "\n",
	} {
		writeCreds(t, path, bad)
		if _, err := s.Reload(); err == nil {
			t.Fatalf("reload of %q succeeded", bad)
		}
		if err := s.Verify(t.Context(), "dave", []byte("dave-password")); err != nil {
			t.Errorf("old set lost after a failed reload: %v", err)
		}
		if got := s.Users(); !slices.Equal(got, []string{"bob", "carol", "dave"}) {
			t.Errorf("users %v after a failed reload", got)
		}
	}
	writeCreds(t, path, "")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var me *ModeError
	if _, err := s.Reload(); !errors.As(err, &me) {
		t.Errorf("reload of a 0644 file: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(); err == nil || len(s.Users()) != 3 {
		t.Errorf("reload of a missing file: %v, users %v", err, s.Users())
	}
}

// TestReloadConcurrentVerify exercises the swap under the race detector.
func TestReloadConcurrentVerify(t *testing.T) {
	alice := mustAccount(t, "alice", RoleUser, "alice-password", storeParams)
	s, _ := loadStore(t, alice.String()+"\n", nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if err := s.Verify(t.Context(), "alice", []byte("alice-password")); err != nil {
					t.Error(err)
					return
				}
				s.Role("alice")
			}
		})
	}
	for range 20 {
		if _, err := s.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

// TestPoolBound: never more than Concurrency hashes at once. The hook
// holds every hash open until the test has looked, and synctest.Wait
// guarantees that everyone who could enter has entered.
func TestPoolBound(t *testing.T) {
	for _, limit := range []int{1, 2, 3} {
		synctest.Test(t, func(t *testing.T) {
			alice := mustAccount(t, "alice", RoleUser, "alice-password", storeParams)
			s, _ := loadStore(t, alice.String()+"\n", &Options{Params: storeParams, Concurrency: limit})
			release := make(chan struct{})
			var active, peak atomic.Int32
			s.testHookHash = func(enter bool, _ *passwordHash) {
				if !enter {
					active.Add(-1)
					return
				}
				n := active.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				<-release
			}
			const logins = 8
			errs := make(chan error, logins)
			for i := range logins {
				user := "alice"
				if i%2 == 1 {
					user = "nobody"
				}
				go func() { errs <- s.Verify(context.Background(), user, []byte("alice-password")) }()
			}
			synctest.Wait()
			if got := active.Load(); got != int32(limit) {
				t.Errorf("limit %d: %d hashes running, want exactly %d", limit, got, limit)
			}
			close(release)
			var failed int
			for range logins {
				if err := <-errs; err != nil {
					if !errors.Is(err, ErrAuthFailed) {
						t.Error(err)
					}
					failed++
				}
			}
			if failed != logins/2 {
				t.Errorf("%d failed logins, want %d", failed, logins/2)
			}
			if peak.Load() != int32(limit) {
				t.Errorf("limit %d: peak %d", limit, peak.Load())
			}
		})
	}
}

// TestVerifyHonoursContextWhileQueued: a login waiting for a slot gives up
// when its context ends, with the context's error (not ErrAuthFailed).
func TestVerifyHonoursContextWhileQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		alice := mustAccount(t, "alice", RoleUser, "alice-password", storeParams)
		s, _ := loadStore(t, alice.String()+"\n", &Options{Params: storeParams, Concurrency: 1})
		release := make(chan struct{})
		s.testHookHash = func(enter bool, _ *passwordHash) {
			if enter {
				<-release
			}
		}
		first := make(chan error, 1)
		go func() { first <- s.Verify(context.Background(), "alice", []byte("alice-password")) }()
		synctest.Wait() // the first login holds the only slot

		ctx, cancel := context.WithCancel(context.Background())
		queued := make(chan error, 1)
		go func() { queued <- s.Verify(ctx, "alice", []byte("alice-password")) }()
		synctest.Wait()
		select {
		case err := <-queued:
			t.Fatalf("queued login returned early: %v", err)
		default:
		}
		cancel()
		err := <-queued
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrAuthFailed) {
			t.Errorf("queued login: %v, want context.Canceled", err)
		}
		close(release)
		if err := <-first; err != nil {
			t.Error(err)
		}
		// An already cancelled context never takes a slot.
		if err := s.Verify(ctx, "alice", []byte("alice-password")); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled context: %v", err)
		}
	})
}

// TestWrongPasswordCostsADefaultHash: a failed check costs at least one
// hash at the current defaults for every account and for unknown users,
// so response time does not single out accounts with cheap hashes.
func TestWrongPasswordCostsADefaultHash(t *testing.T) {
	weak := mustAccount(t, "weak", RoleUser, "weak-password", testParams)
	strong := mustAccount(t, "strong", RoleUser, "strong-password", storeParams)
	s, _ := loadStore(t, weak.String()+"\n"+strong.String()+"\nbob:"+bcryptHash+"\n",
		&Options{Params: storeParams, NoRehash: true})
	var atDefaults, other int
	s.testHookHash = func(enter bool, h *passwordHash) {
		if !enter {
			return
		}
		if h.scheme == schemeArgon2id && h.params == storeParams {
			atDefaults++
		} else {
			other++
		}
	}
	for _, user := range []string{"weak", "strong", "bob", "nobody"} {
		atDefaults, other = 0, 0
		if err := s.Verify(t.Context(), user, []byte("not-the-password")); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("%s: %v", user, err)
		}
		if atDefaults != 1 {
			t.Errorf("wrong password for %s ran %d hashes at the defaults, want 1", user, atDefaults)
		}
	}
	// A right password needs no padding: the login is not a secret to
	// the one who knows the password.
	atDefaults, other = 0, 0
	if err := s.Verify(t.Context(), "bob", []byte(bcryptPass)); err != nil {
		t.Fatal(err)
	}
	if atDefaults != 0 || other != 1 {
		t.Errorf("right bcrypt password: %d hashes at the defaults and %d others, want 0 and 1", atDefaults, other)
	}
}

// TestBcryptRefusesOverlongPassword: bcrypt reads 72 bytes; a longer
// password must not match by its prefix, nor be stored by the rehash.
func TestBcryptRefusesOverlongPassword(t *testing.T) {
	prefix := []byte(strings.Repeat("p", 72))
	hash, err := bcrypt.GenerateFromPassword(prefix, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	content := "bob:" + string(hash) + "\n"
	s, path := loadStore(t, content, nil)
	long := append(slices.Clone(prefix), "-and-more"...)
	err = s.Verify(t.Context(), "bob", long)
	if !errors.Is(err, ErrAuthFailed) || !strings.Contains(err.Error(), "longer than bcrypt's 72 bytes") {
		t.Errorf("73+ byte password against bcrypt: %v, want a refusal", err)
	}
	if readText(t, path) != content {
		t.Fatal("an over-long password was rehashed into the creds file")
	}
	if err := s.Verify(t.Context(), "bob", prefix); err != nil {
		t.Errorf("72-byte password: %v", err)
	}
	if err := s.Verify(t.Context(), "bob", prefix); err != nil {
		t.Errorf("after the rehash: %v", err)
	}
	if err := s.Verify(t.Context(), "bob", long); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("after the rehash, the long password: %v", err)
	}
}
