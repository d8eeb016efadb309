package handshake

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Fingerprint returns "SHA256:" and the unpadded standard base64 of
// SHA-256 over the raw 32-byte key (PROTOCOL.md §7.1), as OpenSSH prints it.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// statelessResetLabel is the HKDF info of StatelessResetKey. It is used for
// nothing else, so the reset key is independent of every other secret drawn
// from the host key.
const statelessResetLabel = "securechat-v1 quic stateless reset key"

// StatelessResetKey derives, from the host key's private seed, the key a QUIC
// server makes its stateless reset tokens with (RFC 9000 §10.3): HKDF-SHA-256
// with no salt and info "securechat-v1 quic stateless reset key", 32 bytes.
// It is the same across restarts of a server that keeps its host key, so a
// restarted server can tell the clients of its previous run, at their first
// packet, that their connections are gone; with a random key they would wait
// for the idle timeout. The key cannot be turned back into the host key, and
// tokens reveal nothing of it.
func StatelessResetKey(hostKey ed25519.PrivateKey) [32]byte {
	var key [32]byte
	b, err := hkdf.Key(sha256.New, hostKey.Seed(), nil, statelessResetLabel, len(key))
	if err != nil {
		// Only an output length beyond 255 hash blocks fails.
		panic("handshake: stateless reset key: " + err.Error())
	}
	copy(key[:], b)
	return key
}

const hostKeyPEMType = "PRIVATE KEY"

// LoadOrCreateHostKey returns the Ed25519 host key stored at path as PEM
// PKCS#8. If the file does not exist it generates a key and creates the file
// with mode 0600 (O_EXCL: an existing file is never overwritten, and a
// racing creator loses cleanly); created reports which happened. A file that
// group or others can access is refused, as OpenSSH refuses such key files.
func LoadOrCreateHostKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = createHostKey(path)
	if err == nil {
		return key, true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, false, err
	}
	key, err = loadHostKey(path)
	return key, false, err
}

func createHostKey(path string) (ed25519.PrivateKey, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("handshake: host key directory: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		return nil, fmt.Errorf("handshake: creating host key: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err == nil {
		err = writeHostKey(f, key)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// The file is ours (O_EXCL); do not leave a half-written key behind.
		os.Remove(path)
		return nil, fmt.Errorf("handshake: writing host key %s: %w", path, err)
	}
	return key, nil
}

func writeHostKey(f *os.File, key ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	defer clear(der)
	if err := pem.Encode(f, &pem.Block{Type: hostKeyPEMType, Bytes: der}); err != nil {
		return err
	}
	return f.Sync()
}

func loadHostKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("handshake: reading host key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("handshake: reading host key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("handshake: host key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("handshake: permissions %04o for '%s' are too open: the host key must not be accessible by group or others (chmod 600 '%s')", perm, path, path)
	}
	const maxHostKeyFile = 64 << 10
	data, err := io.ReadAll(io.LimitReader(f, maxHostKeyFile+1))
	defer clear(data)
	if err != nil {
		return nil, fmt.Errorf("handshake: reading host key: %w", err)
	}
	if len(data) > maxHostKeyFile {
		return nil, fmt.Errorf("handshake: host key %s: file too large", path)
	}
	return parseHostKey(data, path)
}

func parseHostKey(data []byte, path string) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("handshake: host key %s: no PEM block found (want %q)", path, hostKeyPEMType)
	}
	defer clear(block.Bytes)
	if block.Type != hostKeyPEMType {
		return nil, fmt.Errorf("handshake: host key %s: PEM block is %q, want %q", path, block.Type, hostKeyPEMType)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("handshake: host key %s: trailing data after the PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("handshake: host key %s: %v", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("handshake: host key %s: %T is not an Ed25519 key", path, k)
	}
	return key, nil
}

// HostKeyFile is the host key's name inside a server's state directory.
// During a rotation the next key lies beside it with NextHostKeySuffix.
const (
	HostKeyFile       = "host_ed25519_key"
	NextHostKeySuffix = ".next"
)

// LoadNextHostKey returns the next host key beside the one at path (path
// with NextHostKeySuffix), or nil when no rotation is under way. A next key
// that is the current one (a copy) is refused: it could not be announced.
func LoadNextHostKey(path string, current ed25519.PrivateKey) (ed25519.PrivateKey, error) {
	key, err := loadHostKey(path + NextHostKeySuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if key.Equal(current) {
		return nil, fmt.Errorf("%s is the current host key, not a new one; delete it and run securechat keygen --next", path+NextHostKeySuffix)
	}
	return key, nil
}

// LoadHostKey reads the Ed25519 host key at path, which must exist, with
// the same checks as LoadOrCreateHostKey.
func LoadHostKey(path string) (ed25519.PrivateKey, error) { return loadHostKey(path) }

// CreateHostKey generates a host key and writes it to path with mode 0600.
// It never overwrites: an existing file is an error matching fs.ErrExist.
func CreateHostKey(path string) (ed25519.PrivateKey, error) { return createHostKey(path) }

// PromoteHostKey makes the key at next the current host key at current,
// for host key rotation (PROTOCOL.md §7.5), and keeps the key it replaces
// at old for a rollback. Both keys are loaded and checked first. The old
// key is hard-linked to old (replacing an earlier one), then next is
// renamed over current: each step is atomic, and at every moment current
// holds a whole key, so a server starting meanwhile never finds it
// missing (and never generates a fresh one).
func PromoteHostKey(current, next, old string) error {
	cur, err := loadHostKey(current)
	if err != nil {
		return err
	}
	nxt, err := loadHostKey(next)
	if err != nil {
		return err
	}
	if bytes.Equal(cur.Public().(ed25519.PublicKey), nxt.Public().(ed25519.PublicKey)) {
		return fmt.Errorf("handshake: %s holds the same key as %s", next, current)
	}
	clear(cur)
	clear(nxt)
	tmp := old + ".tmp"
	os.Remove(tmp)
	if err := os.Link(current, tmp); err != nil {
		return fmt.Errorf("handshake: keeping the old host key: %w", err)
	}
	if err := os.Rename(tmp, old); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("handshake: keeping the old host key: %w", err)
	}
	if err := os.Rename(next, current); err != nil {
		return fmt.Errorf("handshake: promoting the next host key: %w", err)
	}
	if d, err := os.Open(filepath.Dir(current)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
