package handshake

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// handshakeOnly runs both sides up to and including the FINISHED exchange,
// without login, over net.Pipe.
func handshakeOnly(b *testing.B, ccfg *ClientConfig, scfg *ServerConfig) {
	cc, sc := net.Pipe()
	ctx := context.Background()
	chs, err := newClientHandshake(cc, ccfg)
	if err != nil {
		b.Fatal(err)
	}
	shs, err := newServerHandshake(ctx, sc, scfg)
	if err != nil {
		b.Fatal(err)
	}
	upTo := func(steps []func() error) func() error {
		return func() error {
			for _, s := range steps[:len(steps)-1] { // all but login
				if err := s(); err != nil {
					return err
				}
			}
			return nil
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, sc, upTo(shs.steps()), shs.fail) }()
	if err := run(ctx, cc, upTo(chs.steps()), chs.fail); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	chs.erase()
	shs.erase()
	cc.Close()
	sc.Close()
}

func BenchmarkHandshake(b *testing.B) {
	for _, g := range []Group{GroupX25519, GroupMLKEM768X25519, GroupFFDHE3072} {
		b.Run(g.String(), func(b *testing.B) {
			ccfg, _ := clientConfig("alice", "correct horse")
			ccfg.Groups = []Group{g}
			scfg := serverConfig(newVerifier())
			b.ReportAllocs()
			for b.Loop() {
				handshakeOnly(b, ccfg, scfg)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
		})
	}
}

// BenchmarkTLS13Handshake is the baseline: a full crypto/tls 1.3 handshake
// (Ed25519 certificate verified against a pinned root, no resumption) over
// the same kind of pipe.
func BenchmarkTLS13Handshake(b *testing.B) {
	key := testHostKey("tls")
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "securechat.test"},
		DNSNames:              []string{"securechat.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public().(ed25519.PublicKey), key)
	if err != nil {
		b.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, tc := range []struct {
		name  string
		curve tls.CurveID
	}{{"X25519", tls.X25519}, {"X25519MLKEM768", tls.X25519MLKEM768}} {
		b.Run(tc.name, func(b *testing.B) {
			scfg := &tls.Config{
				MinVersion:             tls.VersionTLS13,
				Certificates:           []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
				CurvePreferences:       []tls.CurveID{tc.curve},
				SessionTicketsDisabled: true,
			}
			ccfg := &tls.Config{
				MinVersion:             tls.VersionTLS13,
				RootCAs:                roots,
				ServerName:             "securechat.test",
				CurvePreferences:       []tls.CurveID{tc.curve},
				SessionTicketsDisabled: true,
			}
			b.ReportAllocs()
			for b.Loop() {
				cc, sc := net.Pipe()
				errc := make(chan error, 1)
				srv := tls.Server(sc, scfg)
				go func() { errc <- srv.Handshake() }()
				cl := tls.Client(cc, ccfg)
				if err := cl.Handshake(); err != nil {
					b.Fatal(err)
				}
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
				if cl.ConnectionState().CurveID != tc.curve {
					b.Fatalf("negotiated %v", cl.ConnectionState().CurveID)
				}
				cc.Close()
				sc.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
		})
	}
}
