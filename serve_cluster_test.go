package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestServeCheckCluster: serve --check makes every check of the cluster
// link that serve would make, without connecting, and names the flag
// that fixes each problem.
func TestServeCheckCluster(t *testing.T) {
	cases := []struct {
		name  string
		args  func(t *testing.T, w *checkWorld) []string
		code  int
		wants []string
	}{
		{"plaintext off loopback", func(t *testing.T, w *checkWorld) []string {
			return w.args("--cluster", "nats://192.0.2.1:4222")
		}, exitError, []string{"refusing an insecure NATS link", "no TLS", "--cluster-insecure"}},
		{"no credentials off loopback", func(t *testing.T, w *checkWorld) []string {
			return w.args("--cluster", "tls://192.0.2.1:4222")
		}, exitError, []string{"refusing an insecure NATS link", "no credentials", "--cluster-creds"}},
		{"CA file missing", func(t *testing.T, w *checkWorld) []string {
			return w.args("--cluster", "nats://127.0.0.1:4222", "--cluster-ca", filepath.Join(w.dir, "no-ca.pem"))
		}, exitError, []string{"CA file"}},
		{"creds readable by others", func(t *testing.T, w *checkWorld) []string {
			creds := filepath.Join(w.dir, "chat.creds")
			writeFile(t, creds, "not really creds\n", 0o644)
			return w.args("--cluster", "nats://192.0.2.1:4222", "--cluster-insecure", "--cluster-creds", creds)
		}, exitError, []string{"chat.creds is readable by group or others"}},
		{"creds and nkey both", func(t *testing.T, w *checkWorld) []string {
			return w.args("--cluster", "nats://127.0.0.1:4222", "--cluster-creds", "a", "--cluster-nkey", "b")
		}, exitError, []string{"not both"}},
		{"replicas out of range", func(t *testing.T, w *checkWorld) []string {
			return w.args("--cluster", "nats://127.0.0.1:4222", "--cluster-replicas", "0")
		}, exitUsage, []string{"--cluster-replicas 0"}},
		{"address malformed", func(t *testing.T, w *checkWorld) []string {
			return w.args("--cluster", "http://127.0.0.1:4222")
		}, exitError, []string{"scheme must be nats or tls"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newCheckWorld(t)
			code, stdout, stderr := runUser(t, tc.args(t, w)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			for _, want := range tc.wants {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr %q lacks %q", stderr, want)
				}
			}
			if strings.Contains(stdout, "configuration OK") {
				t.Errorf("a bad configuration was called OK: %q", stdout)
			}
		})
	}

	w := newCheckWorld(t)
	code, stdout, stderr := runUser(t, w.args("--cluster", "nats://127.0.0.1:4222,nats://127.0.0.1:4223", "--cluster-replicas", "3")...)
	if code != 0 || !strings.Contains(stdout, "cluster: link to 2 NATS server(s) OK (not connected), 3 replica(s)") {
		t.Errorf("a loopback cluster: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	code, stdout, _ = runUser(t, w.args()...)
	if code != 0 || !strings.Contains(stdout, "cluster: none; this server alone") {
		t.Errorf("no cluster: exit %d\nstdout %q", code, stdout)
	}
}

// TestE2ESingleNodeNeedsNoNATS: without --cluster, serve is one node with
// its own database and nothing else: it chats and stores with no NATS
// server anywhere, never dials NATS's default port, and never mentions a
// cluster in its log.
func TestE2ESingleNodeNeedsNoNATS(t *testing.T) {
	t.Parallel()
	// Anything that dialed NATS by default would come here.
	var dialed atomic.Int64
	if ln, err := net.Listen("tcp", "127.0.0.1:4222"); err != nil {
		t.Logf("127.0.0.1:4222 is taken (%v): the default NATS port is not watched in this run", err)
	} else {
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				dialed.Add(1)
				c.Close()
			}
		}()
	}
	e := newE2EEnv(t)
	state := filepath.Join(e.dir, "state")
	s := e.serve("tcp", "127.0.0.1:0", state, "--flood-rate", "-1")
	alice := s.heldClient("alice")
	bob := s.heldClient("bob")
	alice.send("one node is enough")
	bob.expect("[#general] alice: one node is enough")
	alice.closeStdin()
	bob.closeStdin()
	alice.exit()
	bob.exit()
	s.stop()
	if _, err := os.Stat(filepath.Join(state, "chat.db")); err != nil {
		t.Errorf("the single node kept no database of its own: %v", err)
	}
	if n := dialed.Load(); n != 0 {
		t.Errorf("%d connection(s) to NATS's default port from a serve without --cluster", n)
	}
	for _, l := range append(s.stdoutLines(), s.stderrLines()...) {
		// Paths name the test (and so NATS): look at the rest.
		lower := strings.ToLower(strings.ReplaceAll(l, e.dir, "DIR"))
		if strings.Contains(lower, "cluster") || strings.Contains(lower, "nats") {
			t.Errorf("a serve without --cluster logged %q", l)
		}
	}
}
