//go:build unix

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"securechat/credstore"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var metricsRE = regexp.MustCompile(`^securechat: metrics on (http://127\.0\.0\.1:\d+)/metrics$`)

// metricsURL waits for the metrics line serve prints and returns its base URL.
func (s *e2eServer) metricsURL() string {
	s.t.Helper()
	var base string
	s.waitOut(s.out, "the metrics address", func(lines []string) bool {
		for _, l := range lines {
			if m := metricsRE.FindStringSubmatch(l); m != nil {
				base = m[1]
			}
		}
		return base != ""
	})
	return base
}

// httpGet fetches url and returns the status and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// sampleRE matches one sample of the text exposition format.
var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$`)

// labelRE matches one label pair inside the braces.
var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrape reads /metrics into "name{labels}" → value, and every label value
// seen.
func scrape(t *testing.T, base string) (samples map[string]float64, labelValues []string) {
	t.Helper()
	code, body := httpGet(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	samples = map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("/metrics: unparsable line %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("/metrics: value of %q: %v", line, err)
		}
		samples[m[1]+m[2]] = v
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			labelValues = append(labelValues, l[1]+"="+l[2])
		}
	}
	return samples, labelValues
}

// TestE2EMetrics runs a server with --metrics-listen, chats, and checks
// that /metrics moves with what happened and never names a user or an
// address, and that /readyz turns unready when the creds reload fails
// and when the state directory goes away, and ready again after.
func TestE2EMetrics(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	stateDir := filepath.Join(e.dir, "state")
	s := e.serve("tcp", "127.0.0.1:0", stateDir, "--flood-rate", "-1", "--metrics-listen", "127.0.0.1:0")
	base := s.metricsURL()

	if code, body := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz of a serving server: %d %q", code, body)
	}
	before, _ := scrape(t, base)

	alice := s.heldClient("alice")
	bob := s.heldClient("bob")
	alice.waitAny("[#general] -- bob joined")
	const n = 20
	lines := numbered("metered", n)
	alice.send(lines...)
	for _, l := range lines {
		bob.waitAny("[#general] alice: " + l)
	}
	// A wrong password, so that a failed login is counted too.
	wrong := filepath.Join(e.dir, "wrong-password")
	if err := os.WriteFile(wrong, []byte("not the password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mallory := e.start("carol-wrong", "", "connect", "--transport", "tcp", "--user", "carol",
		"--password-file", wrong, "--known-hosts", e.knownHosts(), "--host-key-check", "accept-new", s.addr)
	mallory.expectExit(exitAuthFailed)

	// The server counts the failed handshake once it sees the client go,
	// which may be after the client has exited: scrape until it shows,
	// within a bound.
	failedHS := `securechat_handshakes_total{group="mlkem768x25519",result="auth_failed"}`
	after, labels := scrape(t, base)
	for deadline := time.Now().Add(e2eWait); after[failedHS] == before[failedHS] && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		after, labels = scrape(t, base)
	}
	moved := func(name string, atLeast float64) {
		t.Helper()
		if d := after[name] - before[name]; d < atLeast {
			t.Errorf("%s moved by %g, want at least %g (before %g, after %g)", name, d, atLeast, before[name], after[name])
		}
	}
	if got := after[`securechat_sessions{transport="tcp"}`]; got != 2 {
		t.Errorf(`securechat_sessions{transport="tcp"} = %g with alice and bob logged in, want 2`, got)
	}
	moved(`securechat_logins_total{result="ok"}`, 2)
	moved(`securechat_logins_total{result="failed"}`, 1)
	moved(`securechat_handshakes_total{group="mlkem768x25519",result="ok"}`, 2)
	moved(failedHS, 1)
	moved(`securechat_handshake_duration_seconds_count{group="mlkem768x25519",result="ok"}`, 2)
	moved(`securechat_messages_in_total`, n)
	moved(`securechat_requests_in_total`, n)
	// Each message reaches bob, and alice gets her own back.
	moved(`securechat_deliveries_out_total`, 2*n)
	if _, ok := after["go_goroutines"]; !ok {
		t.Error("/metrics lacks the Go runtime collector (go_goroutines)")
	}
	// Bounded labels: no user name, no address, no port of a client.
	for _, lv := range labels {
		_, v, _ := strings.Cut(lv, "=")
		for _, bad := range append([]string{"127.0.0.1", "::1", "localhost"}, e2eUsers...) {
			if strings.Contains(v, bad) {
				t.Errorf("label %s holds %q", lv, bad)
			}
		}
	}

	// A creds file the reload refuses: unready, though the old accounts
	// still serve; fixed and reloaded: ready again.
	good, err := os.ReadFile(e.creds)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.creds, append(append([]byte{}, good...), "not an account\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	s.signal(syscall.SIGHUP)
	s.waitStderr("creds reload failed")
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "creds:") {
		t.Errorf("/readyz after a failed reload: %d %q, want 503 naming creds", code, body)
	} else if strings.Contains(body, "not an account") || strings.Contains(body, e.creds) {
		t.Errorf("/readyz quotes the creds file: %q", body)
	}
	if code, _ := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after a failed reload: %d, want 200", code)
	}
	if err := os.WriteFile(e.creds, good, 0o600); err != nil {
		t.Fatal(err)
	}
	s.signal(syscall.SIGHUP)
	s.waitStderr("creds reloaded")
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after a good reload: %d %q, want 200", code, body)
	}

	// An authorized keys file the reload refuses: unready naming the
	// keys, and the status of the creds stays good; fixed: ready.
	keysFile := credstore.KeysPath(e.creds)
	if err := os.WriteFile(keysFile, []byte("alice not-a-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.signal(syscall.SIGHUP)
	s.waitStderr("authorized keys reload failed")
	// The accounts reloaded in the same reload: logged after /readyz
	// learnt of the keys.
	waitStderrCount(s.proc, `"msg":"creds reloaded"`, 2)
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "keys: the last reload of the authorized keys failed") || strings.Contains(body, "creds:") {
		t.Errorf("/readyz after a failed keys reload: %d %q, want 503 naming the authorized keys alone", code, body)
	}
	if err := os.Remove(keysFile); err != nil {
		t.Fatal(err)
	}
	s.signal(syscall.SIGHUP)
	waitStderrCount(s.proc, `"msg":"creds reloaded"`, 3)
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the keys file was mended: %d %q, want 200", code, body)
	}

	// The state directory gone (moved away; permissions would not stop
	// root): unready until it is back.
	moved2 := stateDir + ".away"
	if err := os.Rename(stateDir, moved2); err != nil {
		t.Fatal(err)
	}
	code, body := httpGet(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "state_dir:") {
		t.Errorf("/readyz without the state directory: %d %q, want 503 naming state_dir", code, body)
	}
	if err := os.Rename(moved2, stateDir); err != nil {
		t.Fatal(err)
	}
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with the state directory back: %d %q, want 200", code, body)
	}

	alice.closeStdin()
	alice.expectExit(exitOK)
	bob.closeStdin()
	bob.expectExit(exitOK)
	s.stop()
}

// serve --check refuses a --metrics-listen it could not listen on, and a
// bad one makes serve fail before it listens for chat.
func TestServeCheckMetricsListen(t *testing.T) {
	w := newCheckWorld(t)
	code, _, stderr := runUser(t, w.args("--metrics-listen", "localhost:")...)
	if code != exitUsage || !strings.Contains(stderr, "--metrics-listen") {
		t.Errorf("--metrics-listen localhost: exit %d, %q; want a usage error naming the flag", code, stderr)
	}
	if code, _, stderr := runUser(t, w.args("--metrics-listen", "9464")...); code != exitOK {
		t.Errorf("--metrics-listen 9464: exit %d, %q", code, stderr)
	}
}

// waitStderrCount waits until p's standard error has n lines containing
// text.
func waitStderrCount(p *proc, text string, n int) {
	p.t.Helper()
	p.waitOut(p.err, fmt.Sprintf("%d lines containing %q", n, text), func(lines []string) bool {
		count := 0
		for _, l := range lines {
			if strings.Contains(l, text) {
				count++
			}
		}
		return count >= n
	})
}
