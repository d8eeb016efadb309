package server

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"securechat/chat"
	"securechat/handshake"
	"securechat/transport"
)

// keyOnlyVerifier knows alice's password and alice's key.
type keyOnlyVerifier struct {
	key ed25519.PublicKey
}

func (v *keyOnlyVerifier) Verify(_ context.Context, user string, pw []byte) error {
	if user == "alice" && string(pw) == "password-alice" {
		return nil
	}
	return fmt.Errorf("%w: wrong password", handshake.ErrAuthFailed)
}

func (v *keyOnlyVerifier) VerifyPublicKey(_ context.Context, user string, key ed25519.PublicKey) error {
	if user == "alice" && key.Equal(v.key) {
		return nil
	}
	return fmt.Errorf("%w: key not authorized", handshake.ErrAuthFailed)
}

func startKeyServer(t *testing.T, tr transport.Transport, key ed25519.PublicKey, keysOnly bool, pen *PenaltyBox) (addr string, hostPub ed25519.PublicKey) {
	t.Helper()
	_, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if pen == nil {
		pen = &PenaltyBox{}
	}
	hub := chat.NewHub(&chat.Config{})
	srv := New(Config{
		Transport: tr.Name(), HostKey: hostKey, Verifier: &keyOnlyVerifier{key: key},
		Hub: hub, Gate: &StartupGate{}, Penalties: pen, PublicKeyOnly: keysOnly,
	})
	ln, err := tr.Listen(context.Background(), "127.0.0.1:0", &transport.Options{Admit: srv.AdmitQUIC, Precheck: srv.PrecheckQUIC})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
		hub.Close()
	})
	return ln.Addr().String(), hostKey.Public().(ed25519.PublicKey)
}

func dialWith(tr transport.Transport, addr string, hostPub ed25519.PublicKey, keys []crypto.Signer, password string) (*handshake.Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tr.Dial(ctx, addr, nil)
	if err != nil {
		return nil, err
	}
	cfg := &handshake.ClientConfig{
		Transport: tr.Name(), HostKeyCallback: handshake.FixedHostKey(hostPub), User: "alice", Keys: keys,
	}
	if password != "" {
		cfg.Password = func(int) ([]byte, error) { return []byte(password), nil }
		cfg.MaxAuthTries = 1 + len(keys)
	}
	return handshake.Client(ctx, c, cfg)
}

// TestPublicKeyOnly: with PublicKeyOnly the right password is refused like
// a wrong one, and the user's key logs in, over both transports.
func TestPublicKeyOnly(t *testing.T) {
	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, tr := range transports {
		t.Run(tr.Name(), func(t *testing.T) {
			addr, hostPub := startKeyServer(t, tr, userKey.Public().(ed25519.PublicKey), true, nil)
			if _, err := dialWith(tr, addr, hostPub, nil, "password-alice"); !errors.Is(err, handshake.ErrAuthFailed) {
				t.Errorf("password login: %v, want ErrAuthFailed", err)
			}
			sess, err := dialWith(tr, addr, hostPub, []crypto.Signer{userKey}, "")
			if err != nil {
				t.Fatalf("key login: %v", err)
			}
			sess.Close()
		})
	}
	t.Run("passwords on", func(t *testing.T) {
		tr := transports[0]
		addr, hostPub := startKeyServer(t, tr, userKey.Public().(ed25519.PublicKey), false, nil)
		sess, err := dialWith(tr, addr, hostPub, nil, "password-alice")
		if err != nil {
			t.Fatalf("password login: %v", err)
		}
		sess.Close()
	})
}

// TestRefusedKeyIsPenalised: a refused key earns the source the penalty
// of a refused password.
func TestRefusedKeyIsPenalised(t *testing.T) {
	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	tr := transports[0]
	pen := &PenaltyBox{AuthFail: time.Hour, Min: time.Minute, Max: time.Hour}
	addr, hostPub := startKeyServer(t, tr, userKey.Public().(ed25519.PublicKey), false, pen)
	if _, err := dialWith(tr, addr, hostPub, []crypto.Signer{otherKey}, ""); !errors.Is(err, handshake.ErrAuthFailed) {
		t.Fatalf("wrong key: %v, want ErrAuthFailed", err)
	}
	// The server records the penalty once the connection is over; the
	// refusal of the next connection shows it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		sess, err := dialWith(tr, addr, hostPub, []crypto.Signer{userKey}, "")
		if err != nil {
			break
		}
		sess.Close()
		if time.Now().After(deadline) {
			t.Fatal("source not penalised after a refused key")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
