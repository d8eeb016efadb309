package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

func TestConnectRefusesInsecureLinks(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	writeCA(t, ca)
	// 192.0.2.0/24 is reserved for documentation: nothing is dialled,
	// since each of these is refused before connecting.
	for _, tc := range []struct {
		name string
		urls string
		opts Options
	}{
		{"plaintext", "nats://192.0.2.1:4222", Options{}},
		{"one of several", "nats://127.0.0.1:4222,nats://192.0.2.1:4222", Options{}},
		{"host name", "chat.example:4222", Options{}},
		{"tls without credentials", "tls://192.0.2.1:4222", Options{}},
		{"CA without credentials", "nats://192.0.2.1:4222", Options{CAFile: ca}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Connect(tc.urls, &tc.opts)
			if !errors.Is(err, ErrInsecureLink) {
				t.Fatalf("Connect(%q) = %v, want ErrInsecureLink", tc.urls, err)
			}
		})
	}
}

func TestConnectRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	seed := writeSeed(t, dir)
	for _, tc := range []struct {
		name, urls string
		opts       Options
		want       string
	}{
		{"no address", " , ", Options{}, "no NATS server"},
		{"scheme", "http://127.0.0.1:4222", Options{}, "scheme must be nats or tls"},
		{"both credentials", "127.0.0.1:4222", Options{CredsFile: seed, NKeySeedFile: seed}, "not both"},
		{"cert without key", "127.0.0.1:4222", Options{CertFile: seed}, "both its cert and key"},
		{"password kept out", "http://u:hunter2@127.0.0.1:4222", Options{}, "scheme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Connect(tc.urls, &tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Connect(%q) = %v, want an error about %q", tc.urls, err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error text shows the password: %v", err)
			}
		})
	}
}

func TestConnectWithNKey(t *testing.T) {
	dir := t.TempDir()
	seedFile := writeSeed(t, dir)
	pub := publicKeyOf(t, seedFile)
	e := startEmbedded(t, func(o *server.Options) {
		o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	})

	c, err := Connect(e.url(), &Options{NKeySeedFile: seedFile, Timeout: testTimeout})
	if err != nil {
		t.Fatalf("Connect with the right seed: %v", err)
	}
	ctx := testContext(t)
	if err := c.EnsureStream(ctx, StreamConfig{}); err != nil {
		t.Errorf("EnsureStream over an NKey link: %v", err)
	}
	c.Close()

	if _, err := Connect(e.url(), &Options{Timeout: testTimeout}); err == nil {
		t.Error("Connect without credentials to a server that wants them succeeded")
	}
	other := writeSeed(t, t.TempDir())
	if _, err := Connect(e.url(), &Options{NKeySeedFile: other, Timeout: testTimeout}); err == nil {
		t.Error("Connect with an unknown NKey succeeded")
	}

	if err := os.Chmod(seedFile, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Connect(e.url(), &Options{NKeySeedFile: seedFile, Timeout: testTimeout})
	if err == nil || !strings.Contains(err.Error(), "readable by group or others") {
		t.Errorf("Connect with a world-readable seed = %v, want it refused", err)
	}

	bad := filepath.Join(dir, "bad.nk")
	if err := os.WriteFile(bad, []byte("SUAsecretbutnotaseed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Connect(e.url(), &Options{NKeySeedFile: bad, Timeout: testTimeout})
	if err == nil || strings.Contains(err.Error(), "secretbutnotaseed") {
		t.Errorf("Connect with a bad seed file = %v, want an error that does not quote it", err)
	}
}

func TestConnectWithTLS(t *testing.T) {
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	serverCert := writeCA(t, caFile)
	e := startEmbedded(t, func(o *server.Options) {
		o.TLS = true
		o.TLSVerify = false
		o.TLSTimeout = 5
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}
	})
	url := "tls://" + e.srv.Addr().String()

	c, err := Connect(url, &Options{CAFile: caFile, Timeout: testTimeout})
	if err != nil {
		t.Fatalf("Connect over TLS with the CA: %v", err)
	}
	if !c.NATS().TLSRequired() {
		t.Error("the link is not TLS")
	}
	if err := c.EnsureStream(testContext(t), StreamConfig{}); err != nil {
		t.Errorf("EnsureStream over TLS: %v", err)
	}
	c.Close()

	otherCA := filepath.Join(dir, "other.pem")
	writeCA(t, otherCA)
	if _, err := Connect(url, &Options{CAFile: otherCA, Timeout: testTimeout}); err == nil {
		t.Error("Connect trusted a server certificate from another CA")
	}
}

// writeSeed writes a new user NKey seed, mode 0600, and returns its path.
func writeSeed(t *testing.T, dir string) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, "*.nk")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(append(seed, '\n')); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func publicKeyOf(t *testing.T, seedFile string) string {
	t.Helper()
	seed, err := os.ReadFile(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// writeCA writes a new self-signed CA to path and returns a certificate it
// issued for 127.0.0.1.
func writeCA(t *testing.T, path string) tls.Certificate {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "securechat test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestParseURLs(t *testing.T) {
	got, err := parseURLs(" a:7000 ,tls://b, nats://[::1]:4223")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"nats://a:7000", "tls://b:4222", "nats://[::1]:4223"}
	if len(got) != len(want) {
		t.Fatalf("parseURLs = %v", got)
	}
	for i, u := range got {
		if u.String() != want[i] {
			t.Errorf("address %d = %s, want %s", i, u, want[i])
		}
	}
	for _, host := range []string{"127.0.0.1", "127.8.9.10", "::1", "localhost", "LocalHost"} {
		if !isLoopback(host) {
			t.Errorf("%s is not taken as loopback", host)
		}
	}
	for _, host := range []string{"10.0.0.1", "192.0.2.1", "example.com", "localhost.example.com", "::"} {
		if isLoopback(host) {
			t.Errorf("%s is taken as loopback", host)
		}
	}
}
