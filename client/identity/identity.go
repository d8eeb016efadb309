// Package identity holds the keys a user logs in with: found in ssh-agent
// and the default key files, read from OpenSSH private key files (asking
// for a passphrase where there is a terminal), and made by keygen --user.
//
// Its one rule: a passphrase comes from a file or the terminal, never from
// a flag value, and it is cleared once the key is decrypted.
package identity

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"securechat/client"
	"securechat/credstore"
	"securechat/internal/cmderr"
)

// The keys the client logs in with (PROTOCOL.md §10.2, method 0x02), in
// the order they are tried, as ssh tries them:
//
//  1. the Ed25519 keys held by the ssh-agent at $SSH_AUTH_SOCK, in the
//     agent's order;
//  2. ~/.ssh/id_ed25519, then the key of 'securechat keygen --user'
//     (<user config dir>/securechat/id_ed25519), each if it exists and the
//     agent did not already offer it;
//
// and then the password. With --identity FILE only that key is tried (by
// the agent if it holds it, so that its passphrase is not asked); with
// --identity none, none is. Each key
// the server refuses uses one of the three attempts; while a password is
// available the keys leave it the last one.

// Passphrase is where a key's passphrase comes from: a file, or the
// terminal (Interactive only). It is never a flag value.
type Passphrase struct {
	File        string
	Interactive bool
	// Ask reads a passphrase from the terminal; nil is the terminal
	// itself (tests replace it).
	Ask func(prompt string) ([]byte, error)
}

// DefaultFile is the default place of 'securechat keygen --user'.
func DefaultFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory for the user key: %w", err)
	}
	return filepath.Join(dir, "securechat", "id_ed25519"), nil
}

// LoginKeys returns the keys to try, in the order above. notes gets a line
// about each default key that is skipped.
func LoginKeys(identity string, pp Passphrase, notes io.Writer) ([]crypto.Signer, error) {
	if identity == "none" {
		return nil, nil
	}
	agentKeys, err := agentSigners(os.Getenv("SSH_AUTH_SOCK"))
	if err != nil {
		fmt.Fprintf(notes, "securechat: not using ssh-agent: %v\n", err)
	}
	if identity != "" {
		k, err := loadIdentity(identity, agentKeys, pp, true)
		if err != nil {
			// %v: a key that cannot be loaded is a plain failure (exit 1),
			// whatever the cause, an interrupted prompt included.
			return nil, fmt.Errorf("--identity %s: %v", identity, err)
		}
		return []crypto.Signer{k}, nil
	}
	keys := append([]crypto.Signer(nil), agentKeys...)
	var files []string
	if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".ssh", "id_ed25519"))
	}
	if f, err := DefaultFile(); err == nil {
		files = append(files, f)
	}
	for _, f := range files {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		k, err := loadIdentity(f, agentKeys, pp, false)
		if err != nil {
			fmt.Fprintf(notes, "securechat: skipping key %s: %v\n", f, err)
			continue
		}
		if !containsSigner(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

var errSkipKey = errors.New("it has a passphrase and there is no terminal to ask for it (use --identity with --passphrase-file, or ssh-agent)")

// loadIdentity reads an OpenSSH private key file, preferring the agent's
// copy of the key when it holds it. explicit says the user named the file:
// then a passphrase that cannot be had is an error rather than a skip.
func loadIdentity(path string, agentKeys []crypto.Signer, pp Passphrase, explicit bool) (crypto.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	raw, err := ssh.ParseRawPrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if missing.PublicKey != nil {
			for _, k := range agentKeys {
				if ak, ok := k.(*agentSigner); ok && string(ak.key.Blob) == string(missing.PublicKey.Marshal()) {
					return k, nil
				}
			}
		}
		pass, perr := pp.get(path, explicit)
		if perr != nil {
			return nil, perr
		}
		raw, err = ssh.ParseRawPrivateKeyWithPassphrase(pem, pass)
		clear(pass)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, errors.New("wrong passphrase")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("not an OpenSSH private key: %v", err)
	}
	switch k := raw.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ed25519.PrivateKey:
		return *k, nil
	}
	return nil, fmt.Errorf("a %T key; securechat logs in with Ed25519 keys only (ssh-keygen -t ed25519)", raw)
}

func (pp Passphrase) get(path string, explicit bool) ([]byte, error) {
	if pp.File != "" && explicit {
		b, err := os.ReadFile(pp.File)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		return credstore.TrimLineBreak(b), nil
	}
	if !pp.Interactive {
		if explicit {
			return nil, errors.New("it has a passphrase and there is no terminal to ask for it (use --passphrase-file FILE, or add the key to ssh-agent)")
		}
		return nil, errSkipKey
	}
	ask := pp.Ask
	if ask == nil {
		ask = readPasswordTTY
	}
	prompt := "Passphrase for " + path + ": "
	if !explicit {
		prompt = "Passphrase for " + path + " (Enter to skip it): "
	}
	p, err := ask(prompt)
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		if explicit {
			return nil, errors.New("no passphrase given")
		}
		return nil, errors.New("skipped at the prompt")
	}
	return p, nil
}

func containsSigner(keys []crypto.Signer, k crypto.Signer) bool {
	pub, _ := k.Public().(ed25519.PublicKey)
	for _, have := range keys {
		if hp, ok := have.Public().(ed25519.PublicKey); ok && hp.Equal(pub) {
			return true
		}
	}
	return false
}

// agentSigners returns the Ed25519 keys of the ssh-agent at sock ("": none).
// The connection stays open for the life of the process, for reconnects.
func agentSigners(sock string) ([]crypto.Signer, error) {
	if sock == "" {
		return nil, nil
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	ag := agent.NewClient(conn)
	list, err := ag.List()
	if err != nil {
		conn.Close()
		return nil, err
	}
	var out []crypto.Signer
	for _, k := range list {
		if k.Format != ssh.KeyAlgoED25519 {
			continue
		}
		pub, err := ssh.ParsePublicKey(k.Blob)
		if err != nil {
			continue
		}
		cp, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			continue
		}
		edPub, ok := cp.CryptoPublicKey().(ed25519.PublicKey)
		if !ok {
			continue
		}
		out = append(out, &agentSigner{ag: ag, key: k, pub: edPub})
	}
	if len(out) == 0 {
		conn.Close()
	}
	return out, nil
}

// agentSigner is a key held by ssh-agent. For an ssh-ed25519 key the agent
// signs the bytes it is given with pure Ed25519 (no hashing first, no
// flags), so its signature is the one the protocol asks for; the
// handshake checks it anyway before sending it.
type agentSigner struct {
	ag  agent.Agent
	key *agent.Key
	pub ed25519.PublicKey
}

func (s *agentSigner) Public() crypto.PublicKey { return s.pub }

func (s *agentSigner) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != 0 {
		return nil, errors.New("ssh-agent: Ed25519 signs the message itself, not a hash")
	}
	sig, err := s.ag.Sign(s.key, msg)
	if err != nil {
		return nil, fmt.Errorf("ssh-agent: %w", err)
	}
	if sig.Format != ssh.KeyAlgoED25519 || len(sig.Blob) != ed25519.SignatureSize {
		return nil, fmt.Errorf("ssh-agent: unexpected %s signature", sig.Format)
	}
	return sig.Blob, nil
}

// NewPassphrase is the passphrase of a new key: read from file when one is
// given, else asked twice on the terminal when interactive (empty for
// none), else none.
func NewPassphrase(file string, interactive bool) ([]byte, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		return credstore.TrimLineBreak(b), nil
	case interactive:
		p1, err := readPasswordTTY("Passphrase for the new key (empty for none): ")
		if err != nil {
			return nil, err
		}
		if len(p1) > 0 {
			p2, err := readPasswordTTY("Same passphrase again: ")
			if err != nil {
				return nil, err
			}
			defer clear(p2)
			if string(p1) != string(p2) {
				clear(p1)
				return nil, errors.New("the passphrases do not match")
			}
		}
		return p1, nil
	}
	return nil, nil
}

// Generate writes a new user key to path in OpenSSH format, encrypted
// when passphrase gives one (it is asked only once the files are known not
// to exist), and its public key beside it (path.pub). It never overwrites.
// It returns the public key's authorized_keys line.
func Generate(path string, passphrase func() ([]byte, error)) (string, error) {
	for _, p := range []string{path, path + ".pub"} {
		if _, err := os.Lstat(p); err == nil {
			return "", cmderr.WithHint(fmt.Errorf("%s already exists; refusing to overwrite it", p), "give another --out FILE")
		}
	}
	pass, err := passphrase()
	if err != nil {
		return "", err
	}
	defer clear(pass)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	comment := "securechat"
	if u, err := user.Current(); err == nil {
		if h, err := os.Hostname(); err == nil {
			comment = u.Username + "@" + h
		}
	}
	var block *pem.Block
	if len(pass) > 0 {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, comment, pass)
	} else {
		block, err = ssh.MarshalPrivateKey(priv, comment)
	}
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.Write(pem.EncodeToMemory(block)); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(sp)), "\n") + " " + comment + "\n"
	if err := os.WriteFile(path+".pub", []byte(line), 0o644); err != nil {
		return "", err
	}
	return line, nil
}

// readPasswordTTY reads a passphrase from the terminal without echo.
func readPasswordTTY(prompt string) ([]byte, error) {
	return client.ReadPassword(context.Background(), prompt)
}
