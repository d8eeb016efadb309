package credstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
)

// Options configure a [Store]. The zero value is the production setup.
type Options struct {
	// Params is the cost of new hashes: of rehashes at login and of the
	// dummy hash for unknown users. Zero means DefaultParams.
	Params Params
	// Max is the ceiling for stored hashes. Zero means MaxParams.
	Max Params
	// Concurrency bounds the Argon2 and bcrypt computations running at
	// once. Zero means runtime.GOMAXPROCS(0).
	Concurrency int
	// NoRehash turns off the upgrade of weak hashes at login.
	NoRehash bool
	// Logger receives rehash failures (user name and error only). Nil
	// means no logging.
	Logger *slog.Logger
}

// Store is the set of accounts loaded from one creds file. It is safe for
// concurrent use. Its Verify method implements handshake.Verifier.
type Store struct {
	path   string
	params Params
	max    Params
	rehash bool
	log    *slog.Logger

	accounts atomic.Pointer[map[string]*storedAccount]
	mu       sync.Mutex // serializes Reload and rehash swaps

	sem   chan struct{}
	dummy *passwordHash // what unknown users are checked against

	// testHookHash, if set, runs inside each pool slot around each hash
	// computation, with the hash being computed against.
	testHookHash func(enter bool, h *passwordHash)
}

// storedAccount is an account as the server holds it.
type storedAccount struct {
	Account
	rehashFailed atomic.Bool // a write failed; do not retry until reload
}

// Diff is what a reload changed, by user name, sorted.
type Diff struct {
	Added   []string
	Removed []string // sessions of these users should end
	Changed []string // password or role changed: the union of the next two
	// Password lists the accounts whose hash changed: a password reset,
	// so sessions logged in with the old password should end.
	Password []string
	// Role lists the accounts whose role changed.
	Role []string
}

// Load reads and checks the creds file at path. Every line must parse, no
// name may repeat, no hash may exceed the ceiling, and the file must not be
// readable by group or others ([ModeError]); otherwise the server must not
// start, and Load returns the error naming the first bad line.
func Load(path string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	s := &Store{
		path:   path,
		params: opts.Params,
		max:    opts.Max,
		rehash: !opts.NoRehash,
		log:    opts.Logger,
	}
	if s.params == (Params{}) {
		s.params = DefaultParams
	}
	if s.max == (Params{}) {
		s.max = MaxParams
	}
	if err := s.params.valid(); err != nil {
		return nil, fmt.Errorf("credstore: default %v", err)
	}
	if err := s.params.Check(s.max); err != nil {
		return nil, fmt.Errorf("credstore: default %v", err)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	n := opts.Concurrency
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	s.sem = make(chan struct{}, n)
	// The dummy costs exactly what a current hash costs (PW-4); its key
	// is random, so no password matches it.
	s.dummy = &passwordHash{scheme: schemeArgon2id, params: s.params,
		salt: make([]byte, saltSize), key: make([]byte, keySize)}
	rand.Read(s.dummy.salt)
	rand.Read(s.dummy.key)

	m, err := s.read()
	if err != nil {
		return nil, err
	}
	s.accounts.Store(&m)
	s.logWeak(m)
	return s, nil
}

// logWeak names the accounts whose hashes are below the current
// parameters (PW-3's warning floor), so an operator sees imports waiting
// for their upgrade.
func (s *Store) logWeak(m map[string]*storedAccount) {
	var weak []string
	for name, a := range m {
		if a.hash.weak(s.params) {
			weak = append(weak, name)
		}
	}
	if len(weak) > 0 {
		sort.Strings(weak)
		s.log.Info("credstore: password hashes below the current parameters, upgraded at the next login",
			"params", s.params.String(), "users", weak)
	}
}

// read parses the whole file into a fresh map.
func (s *Store) read() (map[string]*storedAccount, error) {
	data, err := readGuarded(s.path, 0o077, func(m fs.FileMode) error { return &ModeError{Path: s.path, Mode: m} })
	if err != nil {
		return nil, err
	}
	f, err := parseFile(s.path, data, s.max)
	if err != nil {
		return nil, err
	}
	m := make(map[string]*storedAccount, len(f.index))
	for _, a := range f.Accounts() {
		m[a.Name] = &storedAccount{Account: a}
	}
	return m, nil
}

// Reload parses the file again and, only if all of it is valid, swaps the
// new accounts in at once. On error the old accounts stay in force.
func (s *Store) Reload() (Diff, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.read()
	if err != nil {
		return Diff{}, err
	}
	old := *s.accounts.Load()
	var d Diff
	for name, a := range m {
		o, ok := old[name]
		switch {
		case !ok:
			d.Added = append(d.Added, name)
		case o.hash.text != a.hash.text || o.Role != a.Role:
			d.Changed = append(d.Changed, name)
			if o.hash.text != a.hash.text {
				d.Password = append(d.Password, name)
			}
			if o.Role != a.Role {
				d.Role = append(d.Role, name)
			}
		}
	}
	for name := range old {
		if _, ok := m[name]; !ok {
			d.Removed = append(d.Removed, name)
		}
	}
	sort.Strings(d.Added)
	sort.Strings(d.Removed)
	sort.Strings(d.Changed)
	sort.Strings(d.Password)
	sort.Strings(d.Role)
	s.accounts.Store(&m)
	s.logWeak(m)
	return d, nil
}

// Role returns the role of user and whether the user exists.
func (s *Store) Role(user string) (Role, bool) {
	a, ok := (*s.accounts.Load())[user]
	if !ok {
		return RoleUser, false
	}
	return a.Role, true
}

// Users returns the account names, sorted.
func (s *Store) Users() []string {
	m := *s.accounts.Load()
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Verify checks password for user. It returns nil on success, an error
// wrapping [ErrAuthFailed] for an unknown user or a wrong password (the
// text says which, for the server log; never the password), or another
// error if ctx ended while waiting for a hashing slot.
//
// A wrong password costs at least one Argon2id computation at the current
// default parameters, whoever the user is, so response time does not tell
// which names exist nor which accounts still have a cheap hash: an unknown
// user is checked against a dummy at the defaults, and a failed check
// against a bcrypt hash, or an Argon2id hash below the defaults, is followed
// by the same dummy computation. A successful login with such a hash
// rewrites that account's line with a new hash.
//
// bcrypt reads only the first 72 bytes of a password, so a longer one is
// refused for a bcrypt account: it would match by its prefix, and the
// rehash would then store what was typed, a password never checked.
func (s *Store) Verify(ctx context.Context, user string, password []byte) error {
	a := (*s.accounts.Load())[user]
	if err := s.acquire(ctx); err != nil {
		return err
	}
	h := s.dummy
	if a != nil {
		h = a.hash
	}
	ok := s.compute(h, password)
	if !ok && h.cheaperThan(s.params) {
		s.compute(s.dummy, password)
	}
	s.release()

	switch {
	case a == nil:
		return fmt.Errorf("%w: unknown user %q", ErrAuthFailed, user)
	case h.scheme == schemeBcrypt && len(password) > bcryptMaxPassword:
		return fmt.Errorf("%w: password for user %s is longer than bcrypt's %d bytes", ErrAuthFailed, user, bcryptMaxPassword)
	case !ok:
		return fmt.Errorf("%w: wrong password for user %s", ErrAuthFailed, user)
	}
	if s.rehash && a.hash.weak(s.params) && !a.rehashFailed.Load() {
		s.upgrade(ctx, a, password)
	}
	return nil
}

// compute runs one comparison; the caller holds a pool slot.
func (s *Store) compute(h *passwordHash, password []byte) bool {
	s.hook(true, h)
	defer s.hook(false, h)
	return h.matches(password)
}

func (s *Store) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("credstore: %w", err)
	}
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("credstore: %w", ctx.Err())
	}
}

func (s *Store) release() { <-s.sem }

func (s *Store) hook(enter bool, h *passwordHash) {
	if s.testHookHash != nil {
		s.testHookHash(enter, h)
	}
}

// upgrade replaces a's weak hash with one at the current defaults, in the
// file and in memory. The login has already succeeded, so failures are
// only logged; a failed write is not retried until the next reload, so a
// read-only creds directory does not double the cost of every login.
func (s *Store) upgrade(ctx context.Context, a *storedAccount, password []byte) {
	if err := s.acquire(ctx); err != nil {
		return
	}
	s.hook(true, s.dummy)
	fresh := newArgon2id(password, s.params)
	s.hook(false, s.dummy)
	s.release()

	old := a.hash.text
	updated := Account{Name: a.Name, Role: a.Role, hash: fresh}
	err := edit(s.path, s.max, func(f *File) error {
		cur, ok := f.Lookup(a.Name)
		if !ok || cur.hash.text != old {
			// Deleted or changed meanwhile: the newer edit wins.
			return errSkip
		}
		return f.Replace(updated)
	})
	switch {
	case errors.Is(err, errSkip):
		return
	case err != nil:
		a.rehashFailed.Store(true)
		s.log.Warn("credstore: cannot upgrade password hash", "user", a.Name, "err", err)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	cur := *s.accounts.Load()
	if c, ok := cur[a.Name]; !ok || c.hash.text != old {
		return
	}
	m := make(map[string]*storedAccount, len(cur))
	for k, v := range cur {
		m[k] = v
	}
	m[a.Name] = &storedAccount{Account: updated}
	s.accounts.Store(&m)
	s.log.Info("credstore: upgraded password hash", "user", a.Name, "scheme", fresh.describe())
}

var errSkip = errors.New("credstore: skip")

// readGuarded reads the file at path, which must be a regular file with
// none of the permission bits in forbidden; tooOpen makes the error for
// one that has some. The mode is checked on the file opened, not on its
// name, so a file swapped in between is not read unchecked.
func readGuarded(path string, forbidden fs.FileMode, tooOpen func(fs.FileMode) error) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("credstore: %w", err)
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("credstore: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("credstore: %s is not a regular file", path)
	}
	if info.Mode().Perm()&forbidden != 0 {
		return nil, tooOpen(info.Mode())
	}
	data, err := io.ReadAll(fh)
	if err != nil {
		return nil, fmt.Errorf("credstore: %w", err)
	}
	return data, nil
}
