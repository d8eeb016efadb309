//go:build unix

package main

// End-to-end tests of the securechat binary as a person or a script uses it:
// the binary is built once, then servers and clients run as separate
// processes on loopback, and the tests read only what those processes print
// and how they exit. Every wait is on output (or an exit) with a deadline;
// nothing sleeps to let something happen. Each process is started here and
// killed by its PID in the test's cleanup. Signals and tmux make this file
// Unix-only.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	// e2eWait bounds every wait for output or an exit. It only turns a hang
	// into a failure; nothing asserts how long anything took.
	e2eWait = 60 * time.Second
	// e2eProcessLimit is the hard stop for any one process.
	e2eProcessLimit = 4 * time.Minute
	// e2eArgon2 keeps the accounts cheap to create.
	e2eArgon2 = "m=64,t=1,p=1"
)

var e2eTransports = []string{"tcp", "quic"}

var e2eBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if e2eBuild.dir != "" {
		os.RemoveAll(e2eBuild.dir)
	}
	os.Exit(code)
}

// raceEnabled reports whether this test binary was built with -race; the
// binary under test is then built with it too, so that the end-to-end runs
// also look for data races in the server and the client.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// e2eBinary builds securechat on first use. It is lazy, not in TestMain,
// because other tests of this package re-run the test binary as a helper
// process and must not pay for a build.
func e2eBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end tests build and run the binary; skipped with -short")
	}
	e2eBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "securechat-e2e-")
		if err != nil {
			e2eBuild.err = err
			return
		}
		e2eBuild.dir = dir
		e2eBuild.bin = filepath.Join(dir, "securechat")
		args := []string{"build", "-o", e2eBuild.bin}
		if raceEnabled() {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, ".")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			e2eBuild.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if e2eBuild.err != nil {
		t.Fatal(e2eBuild.err)
	}
	return e2eBuild.bin
}

// lineBuf collects a process's output line by line and wakes waiters on
// every new line.
type lineBuf struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	changed chan struct{} // closed and replaced when lines grow or the stream ends
	closed  bool
}

func newLineBuf() *lineBuf { return &lineBuf{changed: make(chan struct{})} }

func (b *lineBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.partial = append(b.partial, p...)
	grew := false
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		b.lines = append(b.lines, string(b.partial[:i]))
		b.partial = append(b.partial[:0], b.partial[i+1:]...)
		grew = true
	}
	if grew {
		close(b.changed)
		b.changed = make(chan struct{})
	}
	return len(p), nil
}

// finish ends the stream: a last line without a newline still counts.
func (b *lineBuf) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.partial) > 0 {
		b.lines = append(b.lines, string(b.partial))
		b.partial = nil
	}
	b.closed = true
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *lineBuf) snapshot() (lines []string, changed <-chan struct{}, closed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lines[:len(b.lines):len(b.lines)], b.changed, b.closed
}

// proc is one securechat process started by a test.
type proc struct {
	t        *testing.T
	name     string
	args     []string
	cmd      *exec.Cmd
	stdin    io.WriteCloser // nil unless the test holds standard input open
	out, err *lineBuf
	done     chan struct{}
	code     int  // exit code, valid once done is closed
	cursor   int  // next stdout line expect looks at
	short    bool // a helper command run to its end, such as user add
}

// e2eEnv is one test's world: a directory, accounts and the environment
// every process gets.
type e2eEnv struct {
	t     *testing.T
	bin   string
	dir   string
	creds string
	env   []string
	khSeq atomic.Int32
}

// e2eUsers are created in every environment; carol is an admin.
var e2eUsers = []string{"alice", "bob", "carol"}

func newE2EEnv(t *testing.T) *e2eEnv {
	t.Helper()
	e := &e2eEnv{t: t, bin: e2eBinary(t), dir: t.TempDir()}
	e.creds = filepath.Join(e.dir, "creds.txt")
	// The processes see none of the caller's securechat settings nor its
	// ssh-agent, and keep their config and state inside the test directory.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SECURECHAT_") || strings.HasPrefix(k, "XDG_") ||
			k == "HOME" || k == "NO_COLOR" || k == "TMUX" || k == "GORACE" || k == "SSH_AUTH_SOCK" {
			continue
		}
		e.env = append(e.env, kv)
	}
	home := filepath.Join(e.dir, "home")
	// A race-enabled binary otherwise sleeps a second at every exit.
	e.env = append(e.env, "GORACE=atexit_sleep_ms=0", "HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_STATE_HOME="+filepath.Join(home, ".local", "state"))
	for _, u := range e2eUsers {
		if err := os.WriteFile(e.passwordFile(u), []byte(e2ePassword(u)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"user", "add", "--creds", e.creds, "--password-file", e.passwordFile(u), "--argon2-params", e2eArgon2}
		if u == "carol" {
			args = append(args, "--admin")
		}
		if _, stderr, code := e.run(append(args, u)...); code != 0 {
			t.Fatalf("user add %s: exit %d\n%s", u, code, stderr)
		}
	}
	return e
}

// e2ePassword is a throwaway password for a test account.
func e2ePassword(user string) string { return "e2e-password-of-" + user }

func (e *e2eEnv) passwordFile(user string) string {
	return filepath.Join(e.dir, "password-"+user)
}

// knownHosts names a fresh known_hosts file, so that concurrent clients
// never write the same one.
func (e *e2eEnv) knownHosts() string {
	return filepath.Join(e.dir, fmt.Sprintf("known_hosts.%d", e.khSeq.Add(1)))
}

// run runs a short command to its end.
func (e *e2eEnv) run(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	p := e.start("securechat "+args[0], "", args...)
	p.short = true
	code = p.exit()
	return p.stdout(), p.stderr(), code
}

// start starts the binary with input as its standard input (empty: none).
func (e *e2eEnv) start(name, input string, args ...string) *proc {
	e.t.Helper()
	var in io.Reader
	if input != "" {
		in = strings.NewReader(input)
	}
	return e.startProc(name, in, false, args)
}

// startHeld starts the binary with a standard input the test writes to
// and closes.
func (e *e2eEnv) startHeld(name string, args ...string) *proc {
	e.t.Helper()
	return e.startProc(name, nil, true, args)
}

func (e *e2eEnv) startProc(name string, in io.Reader, hold bool, args []string) *proc {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eProcessLimit)
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = e.env
	cmd.Dir = e.dir
	// A session of its own: no controlling terminal, so "no TTY" holds even
	// when the tests run in one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.WaitDelay = 5 * time.Second
	p := &proc{t: t, name: name, args: args, cmd: cmd, out: newLineBuf(), err: newLineBuf(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.err
	if hold {
		w, err := cmd.StdinPipe()
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		p.stdin = w
	} else {
		cmd.Stdin = in
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		err := cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) && p.code == 0 {
			p.code = -1
		}
		p.out.finish()
		p.err.finish()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill() // by PID: only this process
			<-p.done
		}
		cancel()
		for _, l := range p.stderrLines() {
			if strings.Contains(l, "WARNING: DATA RACE") {
				t.Errorf("%s: data race reported by the binary", p.name)
				break
			}
		}
		if t.Failed() && !(p.short && p.code == 0) {
			p.dump()
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) stdoutLines() []string { l, _, _ := p.out.snapshot(); return l }
func (p *proc) stderrLines() []string { l, _, _ := p.err.snapshot(); return l }
func (p *proc) stdout() string        { return strings.Join(p.stdoutLines(), "\n") }
func (p *proc) stderr() string        { return strings.Join(p.stderrLines(), "\n") }

// dump logs the end of the process's output for a failing test.
func (p *proc) dump() {
	tail := func(ls []string) string {
		const n = 60
		if len(ls) > n {
			ls = append([]string{fmt.Sprintf("... (%d lines before)", len(ls)-n)}, ls[len(ls)-n:]...)
		}
		return strings.Join(ls, "\n  ")
	}
	state := "running"
	if p.exited() {
		state = "exit " + strconv.Itoa(p.code)
	}
	p.t.Logf("%s (%s) %s\n stdout:\n  %s\n stderr:\n  %s", p.name, state,
		strings.Join(p.args, " "), tail(p.stdoutLines()), tail(p.stderrLines()))
}

// waitOut waits until cond holds for the stdout (or stderr) lines, failing
// the test if the stream ends first or the deadline passes.
func (p *proc) waitOut(b *lineBuf, what string, cond func(lines []string) bool) []string {
	p.t.Helper()
	deadline := time.NewTimer(e2eWait)
	defer deadline.Stop()
	for {
		lines, changed, closed := b.snapshot()
		if cond(lines) {
			return lines
		}
		if closed {
			p.dump()
			p.t.Fatalf("%s ended before %s", p.name, what)
		}
		select {
		case <-changed:
		case <-deadline.C:
			p.dump()
			p.t.Fatalf("%s: no %s within %s", p.name, what, e2eWait)
		}
	}
}

// expect waits for a stdout line containing s after the previous expected
// line, so that a sequence of expects checks order.
func (p *proc) expect(s string) string {
	p.t.Helper()
	var found string
	p.waitOut(p.out, fmt.Sprintf("line containing %q (in order)", s), func(lines []string) bool {
		for i := p.cursor; i < len(lines); i++ {
			if strings.Contains(lines[i], s) {
				p.cursor, found = i+1, lines[i]
				return true
			}
		}
		return false
	})
	return found
}

// waitAny waits for a stdout line containing s anywhere in the output.
func (p *proc) waitAny(s string) string {
	p.t.Helper()
	return p.waitAnyIn(p.out, s)
}

// waitStderr waits for a stderr line containing s.
func (p *proc) waitStderr(s string) string {
	p.t.Helper()
	return p.waitAnyIn(p.err, s)
}

func (p *proc) waitAnyIn(b *lineBuf, s string) string {
	p.t.Helper()
	var found string
	p.waitOut(b, fmt.Sprintf("line containing %q", s), func(lines []string) bool {
		for _, l := range lines {
			if strings.Contains(l, s) {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

// countLines counts the stdout lines containing s.
func (p *proc) countLines(s string) int {
	n := 0
	for _, l := range p.stdoutLines() {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// send writes lines to the held standard input.
func (p *proc) send(lines ...string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, strings.Join(lines, "\n")+"\n"); err != nil {
		p.dump()
		p.t.Fatalf("%s: writing standard input: %v", p.name, err)
	}
}

func (p *proc) closeStdin() {
	p.t.Helper()
	if err := p.stdin.Close(); err != nil {
		p.t.Fatalf("%s: closing standard input: %v", p.name, err)
	}
}

// exit waits for the process to end and returns its exit code.
func (p *proc) exit() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(e2eWait):
		p.dump()
		p.t.Fatalf("%s did not exit within %s", p.name, e2eWait)
		return -1
	}
}

// exitUnless waits for the exit like exit, but fails at once when a stdout
// line containing bad shows that the process can no longer end well.
func (p *proc) exitUnless(bad, why string) int {
	p.t.Helper()
	deadline := time.NewTimer(e2eWait)
	defer deadline.Stop()
	check := func(lines []string) {
		p.t.Helper()
		for _, l := range lines {
			if strings.Contains(l, bad) {
				p.dump()
				p.t.Fatalf("%s printed %q before exiting: %s", p.name, l, why)
			}
		}
	}
	for {
		lines, changed, _ := p.out.snapshot()
		check(lines)
		select {
		case <-p.done:
			check(p.stdoutLines())
			return p.code
		case <-changed:
		case <-deadline.C:
			p.dump()
			p.t.Fatalf("%s did not exit within %s", p.name, e2eWait)
		}
	}
}

// expectExit waits for the exit and checks its code.
func (p *proc) expectExit(want int) {
	p.t.Helper()
	if got := p.exit(); got != want {
		p.dump()
		p.t.Fatalf("%s: exit code %d, want %d", p.name, got, want)
	}
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("%s: %v: %v", p.name, sig, err)
	}
}

// e2eServer is a running securechat serve.
type e2eServer struct {
	*proc
	env         *e2eEnv
	transport   string
	addr        string
	fingerprint string
	stateDir    string
}

var (
	servingRE     = regexp.MustCompile(`^securechat: serving (\S+) on (\S+)$`)
	fingerprintRE = regexp.MustCompile(`^securechat: host key fingerprint (SHA256:[A-Za-z0-9+/]{43})$`)
)

// serve starts a server on listen (127.0.0.1:0 for any port) with its host
// key in stateDir, and waits for the address and fingerprint it prints.
func (e *e2eEnv) serve(transport, listen, stateDir string, extra ...string) *e2eServer {
	e.t.Helper()
	args := []string{"serve", "--transport", transport, "--listen", listen,
		"--creds", e.creds, "--state-dir", stateDir, "--log-format", "json",
		"--penalty-exempt", "127.0.0.1", "--penalty-exempt", "::1"}
	p := e.startProc("server("+transport+")", nil, false, append(args, extra...))
	s := &e2eServer{proc: p, env: e, transport: transport, stateDir: stateDir}
	p.waitOut(p.out, "address and fingerprint", func(lines []string) bool {
		for _, l := range lines {
			if m := servingRE.FindStringSubmatch(l); m != nil {
				if m[1] != transport {
					e.t.Fatalf("server says it serves %s, want %s", m[1], transport)
				}
				s.addr = m[2]
			}
			if m := fingerprintRE.FindStringSubmatch(l); m != nil {
				s.fingerprint = m[1]
			}
		}
		return s.addr != "" && s.fingerprint != ""
	})
	if host, _, err := net.SplitHostPort(s.addr); err != nil || host != "127.0.0.1" {
		e.t.Fatalf("server address %q is not on 127.0.0.1", s.addr)
	}
	return s
}

// stop sends SIGTERM and waits for a clean exit.
func (s *e2eServer) stop() {
	s.t.Helper()
	s.signal(syscall.SIGTERM)
	s.expectExit(0)
}

// connectArgs builds a script client's command line. kh "" means a fresh
// known_hosts file with accept-new.
func (s *e2eServer) connectArgs(user, kh string, extra ...string) []string {
	if kh == "" {
		kh = s.env.knownHosts()
		extra = append([]string{"--host-key-check", "accept-new"}, extra...)
	}
	args := []string{"connect", "--transport", s.transport, "--user", user,
		"--password-file", s.env.passwordFile(user), "--known-hosts", kh}
	return append(append(args, extra...), s.addr)
}

// client starts a script client whose input is the given lines; it ends
// at the end of that input.
func (s *e2eServer) client(user string, lines []string, extra ...string) *proc {
	s.t.Helper()
	input := ""
	if len(lines) > 0 {
		input = strings.Join(lines, "\n") + "\n"
	}
	return s.env.start(user, input, s.connectArgs(user, "", extra...)...)
}

// heldClient starts a script client with its standard input held open, and
// waits until it has logged in.
func (s *e2eServer) heldClient(user string, extra ...string) *proc {
	s.t.Helper()
	p := s.env.startHeld(user, s.connectArgs(user, "", extra...)...)
	p.expect("[system] logged in as " + user)
	return p
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %04d", prefix, i+1)
	}
	return out
}

// messagesFrom returns, in order, the texts of plain-output room messages
// from user in room.
func messagesFrom(lines []string, room, user string) []string {
	prefix := "[" + room + "] " + user + ": "
	var out []string
	for _, l := range lines {
		if t, ok := strings.CutPrefix(l, prefix); ok {
			out = append(out, t)
		}
	}
	return out
}

func checkSequence(t *testing.T, who string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s got %d messages, want %d", who, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: message %d is %q, want %q (out of order, lost or repeated)", who, i+1, got[i], want[i])
		}
	}
}

// TestE2EScriptBulk pipes 1,000 lines through one script client with the
// flood limit off, while a second script client prints what arrives.
func TestE2EScriptBulk(t *testing.T) {
	t.Parallel()
	for _, tr := range e2eTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t)
			s := e.serve(tr, "127.0.0.1:0", filepath.Join(e.dir, "state"), "--flood-rate", "-1")
			bob := s.heldClient("bob")
			bob.expect("[#general] -- bob joined")

			want := numbered("line", 1000)
			alice := s.client("alice", want)
			// A server that drops events to alice (its queue overflowing)
			// may drop the acknowledgements she waits for: say so at once
			// rather than wait for a hang to time out.
			if code := alice.exitUnless("were not delivered",
				"the server dropped events to her, acknowledgements among them, which she then waits for forever"); code != 0 {
				alice.dump()
				t.Fatalf("alice: exit code %d, want 0", code)
			}
			// alice prints each message as the server relays it back, so
			// her output holding all of them proves she waited for the
			// server before exiting.
			checkSequence(t, "alice (own echo)", messagesFrom(alice.stdoutLines(), "#general", "alice"), want)
			if n := alice.countLines("[error]"); n != 0 {
				t.Errorf("alice printed %d error lines", n)
			}

			bob.expect("[#general] alice: " + want[len(want)-1])
			bob.closeStdin()
			bob.expectExit(0)
			if bob.countLines("were not delivered") != 0 {
				t.Errorf("the server dropped messages to bob, who read all the time")
			}
			checkSequence(t, "bob", messagesFrom(bob.stdoutLines(), "#general", "alice"), want)
		})
	}
}

// TestE2EScriptFloodLimited sends more lines than the default flood burst:
// the script client paces itself by the server's answers, loses nothing
// and keeps the order.
func TestE2EScriptFloodLimited(t *testing.T) {
	t.Parallel()
	for _, tr := range e2eTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t)
			// The defaults: burst 5, then 2 per second.
			s := e.serve(tr, "127.0.0.1:0", filepath.Join(e.dir, "state"))
			bob := s.heldClient("bob")
			bob.expect("[#general] -- bob joined")

			want := numbered("paced", 12)
			alice := s.client("alice", want)
			alice.expectExit(0)
			checkSequence(t, "alice (own echo)", messagesFrom(alice.stdoutLines(), "#general", "alice"), want)

			bob.expect("[#general] alice: " + want[len(want)-1])
			bob.closeStdin()
			bob.expectExit(0)
			checkSequence(t, "bob", messagesFrom(bob.stdoutLines(), "#general", "alice"), want)
		})
	}
}

// TestE2EScriptJSON checks that --json prints one JSON object per line with
// the documented fields.
func TestE2EScriptJSON(t *testing.T) {
	t.Parallel()
	for _, tr := range e2eTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t)
			s := e.serve(tr, "127.0.0.1:0", filepath.Join(e.dir, "state"), "--flood-rate", "-1")
			bob := e.startHeld("bob", s.connectArgs("bob", "", "--json")...)
			bob.expect(`"logged in as bob"`)
			bob.expect(`"kind":"join"`)

			tricky := `quotes " and \ backslash, <html> & ünïcödé`
			alice := s.client("alice", []string{"plain words", tricky, "/msg bob a direct one"})
			alice.expectExit(0)
			bob.expect(`a direct one`)
			bob.closeStdin()
			bob.expectExit(0)

			type event struct {
				Kind, Room, From, To, Text string
				History                    bool
			}
			var events []event
			for i, l := range bob.stdoutLines() {
				var fields map[string]json.RawMessage
				if err := json.Unmarshal([]byte(l), &fields); err != nil {
					t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, l)
				}
				for _, k := range []string{"kind", "room", "from", "text"} {
					if _, ok := fields[k]; !ok {
						t.Errorf("line %d has no %q field: %s", i+1, k, l)
					}
				}
				var ev event
				if err := json.Unmarshal([]byte(l), &ev); err != nil {
					t.Fatalf("line %d: %v", i+1, err)
				}
				events = append(events, ev)
			}
			want := []event{
				{Kind: "msg", Room: "#general", From: "alice", Text: "plain words"},
				{Kind: "msg", Room: "#general", From: "alice", Text: tricky},
				{Kind: "dm", From: "alice", To: "bob", Text: "a direct one"},
			}
			i := 0
			for _, ev := range events {
				if i < len(want) && ev == want[i] {
					i++
				}
			}
			if i != len(want) {
				t.Fatalf("bob's JSON events lack, in order, %+v; got %+v", want[i], events)
			}
		})
	}
}

// TestE2EScriptLongLines feeds lines over the message limit among normal
// ones: a 70 KiB line (once the end of all input, silently, with exit 0)
// and a 20 KB one (once a record the server had to refuse, five
// reconnects and exit 5). Each must be refused by the client with an error
// naming its line, the lines after it must arrive, and the exit code must
// be 1.
func TestE2EScriptLongLines(t *testing.T) {
	t.Parallel()
	for _, tr := range e2eTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t)
			s := e.serve(tr, "127.0.0.1:0", filepath.Join(e.dir, "state"), "--flood-rate", "-1")
			bob := s.heldClient("bob")
			bob.expect("[#general] -- bob joined")

			atLimit := strings.Repeat("z", 4096)
			input := []string{
				"before the long lines",     // 1
				strings.Repeat("x", 70<<10), // 2
				"between them",              // 3
				strings.Repeat("y", 20000),  // 4
				atLimit,                     // 5: exactly the limit, sent
				"after the long lines",      // 6
			}
			alice := s.client("alice", input)
			alice.expectExit(exitError)
			for _, want := range []string{
				"[error] line 2: the message is 71680 bytes, over the server's limit of 4096; not sent",
				"[error] line 4: the message is 20000 bytes, over the server's limit of 4096; not sent",
			} {
				if alice.countLines(want) != 1 {
					t.Errorf("alice's output lacks %q", want)
				}
			}
			if n := alice.countLines("[error]"); n != 2 {
				t.Errorf("alice printed %d error lines, want 2", n)
			}
			if !strings.Contains(alice.stderr(), "2 of the input lines were not sent") {
				t.Errorf("alice's stderr does not count the refused lines: %q", alice.stderr())
			}
			if strings.Contains(alice.stderr(), "connection lost") {
				t.Errorf("a long line cost the connection: %q", alice.stderr())
			}
			sent := []string{input[0], input[2], atLimit, input[5]}
			checkSequence(t, "alice (own echo)", messagesFrom(alice.stdoutLines(), "#general", "alice"), sent)

			bob.expect("[#general] alice: " + input[5])
			bob.closeStdin()
			bob.expectExit(exitOK)
			checkSequence(t, "bob", messagesFrom(bob.stdoutLines(), "#general", "alice"), sent)

			if tr != "tcp" {
				return
			}
			// The same refusal in JSON: the line and the code are fields.
			carol := s.client("carol", []string{"one", strings.Repeat("x", 70<<10), "three"}, "--json")
			carol.expectExit(exitError)
			var refusals, echoes int
			for _, l := range carol.stdoutLines() {
				var ev struct {
					Kind, From, Text, Code string
					Line                   int
				}
				if err := json.Unmarshal([]byte(l), &ev); err != nil {
					t.Fatalf("carol's output is not JSON: %q", l)
				}
				switch {
				case ev.Kind == "error" && ev.Line == 2 && ev.Code == "too_long":
					refusals++
				case ev.Kind == "error":
					t.Errorf("unexpected error event: %s", l)
				case ev.Kind == "msg" && ev.From == "carol" && (ev.Text == "one" || ev.Text == "three"):
					echoes++
				}
			}
			if refusals != 1 || echoes != 2 {
				t.Errorf("carol's JSON holds %d refusals of line 2 and %d of her two short lines; want 1 and 2", refusals, echoes)
			}
		})
	}
}

// TestE2EExitCodes checks the documented exit codes of connect. Each
// subtest owns its processes; the cases within one run in sequence against
// one server.
func TestE2EExitCodes(t *testing.T) {
	t.Parallel()
	t.Run("usage", func(t *testing.T) {
		t.Parallel()
		e := newE2EEnv(t)
		p := e.start("connect", "", "connect", "--user", "alice", "--password-file", e.passwordFile("alice"))
		p.expectExit(exitUsage)
		if !strings.Contains(p.stderr(), "HOST:PORT") {
			t.Errorf("the usage error does not name HOST:PORT: %q", p.stderr())
		}
	})

	for _, tr := range e2eTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t)
			s := e.serve(tr, "127.0.0.1:0", filepath.Join(e.dir, "state-a"))

			// No password: no file, no $SECURECHAT_PASSWORD, no terminal.
			p := e.start("alice", "", "connect", "--transport", tr, "--user", "alice",
				"--known-hosts", e.knownHosts(), "--host-key-check", "accept-new", s.addr)
			p.expectExit(exitError)
			if msg := p.stderr(); !strings.Contains(msg, "no password") || !strings.Contains(msg, "--password-file") {
				t.Errorf("no password: the message does not say what is missing and how to give it: %q", msg)
			}

			// Wrong password.
			bad := filepath.Join(e.dir, "wrong-password")
			if err := os.WriteFile(bad, []byte("not-the-password\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			p = e.start("alice", "", "connect", "--transport", tr, "--user", "alice", "--password-file", bad,
				"--known-hosts", e.knownHosts(), "--host-key-check", "accept-new", s.addr)
			p.expectExit(exitAuthFailed)
			if !strings.Contains(p.stderr(), "authentication failed") {
				t.Errorf("wrong password: stderr %q", p.stderr())
			}

			// An unknown host key in script mode, with the default policy
			// (ask, which script mode turns into strict).
			kh := e.knownHosts()
			p = e.start("alice", "", s.connectArgs("alice", kh)...)
			p.expectExit(exitHostKey)
			if !strings.Contains(p.stderr(), "host key verification failed") {
				t.Errorf("unknown host key: stderr %q", p.stderr())
			}
			if b, err := os.ReadFile(kh); err == nil && len(b) > 0 {
				t.Errorf("unknown host key: the refused key was recorded in known_hosts: %q", b)
			}

			// --fingerprint trusts the right key without a known_hosts entry...
			p = e.start("alice", "", s.connectArgs("alice", e.knownHosts(), "--fingerprint", s.fingerprint)...)
			p.expectExit(exitOK)
			p.waitAny("[system] logged in as alice")

			// ...and refuses any other.
			wrong := "SHA256:" + strings.Repeat("A", 43)
			if wrong == s.fingerprint {
				t.Fatal("the server's key has the all-zero fingerprint")
			}
			p = e.start("alice", "", s.connectArgs("alice", e.knownHosts(), "--fingerprint", wrong)...)
			p.expectExit(exitHostKey)
			if p.countLines("logged in") != 0 {
				t.Error("wrong fingerprint: logged in anyway")
			}

			// A changed key: recorded by accept-new, then the server comes
			// back on the same address with another state directory.
			kh = e.knownHosts()
			p = e.start("alice", "", s.connectArgs("alice", kh, "--host-key-check", "accept-new")...)
			p.expectExit(exitOK)
			b, err := os.ReadFile(kh)
			if err != nil || !strings.Contains(string(b), s.addr) {
				t.Fatalf("accept-new did not record %s in %s: %q, %v", s.addr, kh, b, err)
			}
			s.stop()
			s2 := e.serve(tr, s.addr, filepath.Join(e.dir, "state-b"))
			if s2.fingerprint == s.fingerprint {
				t.Fatal("the restarted server kept its host key")
			}
			p = e.start("alice", "", s2.connectArgs("alice", kh, "--host-key-check", "accept-new")...)
			p.expectExit(exitHostKey)
			msg := p.stderr()
			for _, want := range []string{"REMOTE HOST IDENTIFICATION HAS CHANGED", kh + ":1", s2.fingerprint} {
				if !strings.Contains(msg, want) {
					t.Errorf("the changed-key message lacks %q:\n%s", want, msg)
				}
			}
			if p.countLines("logged in") != 0 {
				t.Error("changed key: logged in anyway")
			}
		})

		t.Run("refused/"+tr, func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t)
			addr := unusedAddr(t, tr)
			p := e.start("alice", "", "connect", "--transport", tr, "--user", "alice",
				"--password-file", e.passwordFile("alice"), "--known-hosts", e.knownHosts(),
				"--host-key-check", "accept-new", addr)
			p.expectExit(exitConnectLost)
			if !strings.Contains(p.stderr(), "cannot connect") {
				t.Errorf("stderr: %q", p.stderr())
			}
		})
	}
}

// unusedAddr returns a loopback address where nothing listens: one that
// was just bound and released.
func unusedAddr(t *testing.T, tr string) string {
	t.Helper()
	if tr == "quic" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestE2EChat exercises history, direct messages, rooms and moderation
// through script clients, as bots would use them.
func TestE2EChat(t *testing.T) {
	t.Parallel()
	for _, tr := range e2eTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t)
			s := e.serve(tr, "127.0.0.1:0", filepath.Join(e.dir, "state"), "--flood-rate", "-1")

			alice := s.heldClient("alice")
			alice.send("early one", "early two")
			alice.expect("[#general] alice: early one")
			alice.expect("[#general] alice: early two")

			// History: a late joiner sees what was said, marked as such.
			carol := s.heldClient("carol")
			carol.expect("[#general] (history) alice: early one")
			carol.expect("[#general] (history) alice: early two")
			carol.waitAny("[#general] -- carol joined")
			if alice.countLines("(history)") != 0 {
				t.Error("alice's live messages were marked as history for her")
			}

			bob := s.heldClient("bob", "--no-reconnect")
			bob.waitAny("[#general] -- bob joined")
			alice.waitAny("[#general] -- bob joined")

			// A direct message reaches bob (and is echoed to alice), not carol.
			alice.send("/msg bob psst secret")
			bob.expect("[dm] alice -> bob: psst secret")
			alice.expect("[dm] alice -> bob: psst secret")
			alice.send("after the dm")
			carol.expect("[#general] alice: after the dm")

			// Rooms: lines go to the room joined last; a part is seen by
			// the members; carol, not in #side, sees none of it.
			bob.send("/join #side")
			bob.expect("[#side] -- bob joined")
			alice.send("/join #side", "in the side room")
			bob.expect("[#side] -- alice joined")
			bob.expect("[#side] alice: in the side room")
			alice.send("/part #side off again")
			bob.expect("[#side] -- alice left (off again)")
			alice.send("back in general")
			carol.expect("[#general] alice: back in general")
			for _, l := range carol.stdoutLines() {
				if strings.Contains(l, "psst secret") || strings.Contains(l, "#side") {
					t.Errorf("carol saw what was not hers: %q", l)
				}
			}

			// Moderation needs an admin.
			alice.send("/kick bob")
			alice.expect("[error]")

			carol.send("/kick bob too noisy")
			// A kick ends the client for good (exit 1), with no reconnect.
			bob.expect("[error] you were kicked by carol: too noisy")
			bob.expectExit(exitError)
			alice.expect("[#general] -- bob quit (kicked by carol: too noisy)")
			carol.expect("kicked bob")

			bob2 := s.heldClient("bob", "--no-reconnect")
			carol.expect("[#general] -- bob joined")
			carol.send("/ban bob 1h spamming")
			bob2.expect("[error] you were banned by carol")
			bob2.expectExit(exitAuthFailed)
			carol.expect("banned bob")

			bob3 := s.client("bob", nil)
			bob3.expectExit(exitAuthFailed)
			if bob3.countLines("logged in") != 0 {
				t.Error("a banned user logged in")
			}

			carol.send("/unban bob")
			carol.expect("unbanned bob")
			bob4 := s.client("bob", nil)
			bob4.expectExit(exitOK)

			carol.closeStdin()
			carol.expectExit(exitOK)
			// The refused /kick makes alice's run a partial failure.
			alice.closeStdin()
			alice.expectExit(exitError)
			if !strings.Contains(alice.stderr(), "1 of the lines sent were rejected") {
				t.Errorf("alice's stderr does not count the rejected line: %q", alice.stderr())
			}
		})
	}
}

// TestE2EGracefulShutdown stops a server with SIGTERM while two clients
// are connected.
func TestE2EGracefulShutdown(t *testing.T) {
	t.Parallel()
	for _, tr := range e2eTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t)
			s := e.serve(tr, "127.0.0.1:0", filepath.Join(e.dir, "state"), "--flood-rate", "-1")
			alice := s.heldClient("alice", "--no-reconnect")
			bob := s.heldClient("bob", "--no-reconnect")
			alice.waitAny("[#general] -- bob joined")
			alice.send("still here")
			bob.expect("[#general] alice: still here")

			s.signal(syscall.SIGTERM)
			for _, c := range []*proc{alice, bob} {
				c.expect("[notice] the server is shutting down")
				// The server said goodbye with a CLOSE record: the client
				// reports a lost connection (exit 5, as --no-reconnect
				// documents), not a truncated stream.
				c.expectExit(exitConnectLost)
				if msg := c.stderr(); !strings.Contains(msg, "connection lost: EOF") || strings.Contains(msg, "without close record") {
					t.Errorf("%s did not see a clean end: %q", c.name, msg)
				}
			}
			s.expectExit(0)
			s.waitStderr(`"msg":"shutting down"`)
		})
	}
}

// TestE2EReconnect restarts the server under a connected script client,
// which reconnects by itself and delivers a line written afterwards.
func TestE2EReconnect(t *testing.T) {
	t.Parallel()
	cases := []struct {
		transport string
		sig       syscall.Signal
	}{
		// A killed TCP server is noticed at once (the kernel resets the
		// connection). A killed QUIC server is noticed at the client's next
		// packet, which the restarted server answers with a stateless reset
		// (its key comes from the host key); without that, only at the
		// idle timeout (30 s).
		{"tcp", syscall.SIGKILL},
		{"quic", syscall.SIGKILL},
		{"quic", syscall.SIGTERM},
	}
	for _, tc := range cases {
		t.Run(tc.transport+"/"+tc.sig.String(), func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t)
			state := filepath.Join(e.dir, "state")
			s := e.serve(tc.transport, "127.0.0.1:0", state, "--flood-rate", "-1")
			alice := s.heldClient("alice")
			alice.expect("[#general] -- alice joined")
			alice.send("before the restart")
			alice.expect("[#general] alice: before the restart")

			s.signal(tc.sig)
			s.exit()
			// Same port and state directory: the same host key, so the
			// known_hosts entry made at the first login still holds.
			s2 := e.serve(tc.transport, s.addr, state, "--flood-rate", "-1")
			if s2.fingerprint != s.fingerprint {
				t.Fatal("the restarted server has another host key")
			}
			if tc.transport == "quic" && tc.sig == syscall.SIGKILL {
				// The line is alice's next packet; her client resends it
				// after reconnecting, as script mode does with anything
				// not yet acknowledged.
				alice.send("anyone there?")
				// And the reset, not the idle timeout, ended the old
				// connection.
				alice.waitStderr("stateless reset")
			}
			alice.expect("[#general] -- alice joined")

			bob := s2.heldClient("bob")
			bob.expect("[#general] -- bob joined")
			alice.send("after the restart")
			bob.expect("[#general] alice: after the restart")
			alice.expect("[#general] alice: after the restart")

			alice.closeStdin()
			alice.expectExit(exitOK)
			bob.closeStdin()
			bob.expectExit(exitOK)
		})
	}
}

// TestE2EReload checks SIGHUP: a removed account's session ends, and a
// broken creds file is refused while the server keeps the old accounts.
func TestE2EReload(t *testing.T) {
	t.Parallel()
	for _, tr := range e2eTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t)
			s := e.serve(tr, "127.0.0.1:0", filepath.Join(e.dir, "state"), "--flood-rate", "-1")
			alice := s.heldClient("alice")
			bob := s.heldClient("bob")
			alice.waitAny("[#general] -- bob joined")

			if _, stderr, code := e.run("user", "del", "--creds", e.creds, "bob"); code != 0 {
				t.Fatalf("user del bob: exit %d: %s", code, stderr)
			}
			s.signal(syscall.SIGHUP)
			s.waitStderr(`"msg":"creds reloaded"`)
			bob.expect("[notice] disconnected by the server: your account was removed")
			alice.expect("[#general] -- bob quit")
			// bob's client tries again, and the server no longer knows him.
			bob.expectExit(exitAuthFailed)
			if !strings.Contains(bob.stderr(), "authentication failed") {
				t.Errorf("bob's stderr: %q", bob.stderr())
			}

			// A broken line: the reload fails, names file:line, changes nothing.
			before, err := os.ReadFile(e.creds)
			if err != nil {
				t.Fatal(err)
			}
			badLine := bytes.Count(before, []byte("\n")) + 1
			f, err := os.OpenFile(e.creds, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("this line is not an account\n"); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			s.signal(syscall.SIGHUP)
			logLine := s.waitStderr("creds reload failed")
			var entry struct{ Level, Msg, Err string }
			if err := json.Unmarshal([]byte(logLine), &entry); err != nil {
				t.Fatalf("log line is not JSON: %v: %s", err, logLine)
			}
			where := fmt.Sprintf("%s:%d", e.creds, badLine)
			if entry.Level != "ERROR" || !strings.Contains(entry.Err, where) {
				t.Errorf("the reload error should be logged at ERROR naming %s: %s", where, logLine)
			}
			alice2 := s.client("alice", []string{"still let in"})
			alice2.expectExit(exitOK)
			alice.expect("[#general] alice: still let in")
			if s.exited() {
				t.Fatal("the server exited after a failed reload")
			}

			alice.closeStdin()
			alice.expectExit(exitOK)
			s.stop()
		})
	}
}

// TestE2EReloadPasswordAndRole checks SIGHUP for changed accounts: a reset
// password ends the sessions that logged in with the old one, and an admin
// role taken away ends the moderation commands of a session already logged
// in, which is told.
func TestE2EReloadPasswordAndRole(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	s := e.serve("tcp", "127.0.0.1:0", filepath.Join(e.dir, "state"), "--flood-rate", "-1")
	alice := s.heldClient("alice")
	carol := s.heldClient("carol")
	bob := s.heldClient("bob")
	carol.send("/bans")
	carol.expect("[system] nobody is banned or muted")

	newPassword := filepath.Join(e.dir, "new-password-alice")
	if err := os.WriteFile(newPassword, []byte("a brand new password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := e.run("user", "passwd", "--creds", e.creds, "--password-file", newPassword,
		"--argon2-params", e2eArgon2, "alice"); code != 0 {
		t.Fatalf("user passwd alice: exit %d: %s", code, stderr)
	}
	creds, err := os.ReadFile(e.creds)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(creds), "\n") {
		if strings.HasPrefix(l, "carol:") {
			l = strings.TrimSuffix(l, ":admin")
		}
		lines = append(lines, l)
	}
	if err := os.WriteFile(e.creds, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	s.signal(syscall.SIGHUP)
	s.waitStderr(`"msg":"creds reloaded"`)

	alice.expect("[notice] disconnected by the server: your password was changed")
	bob.expect("[#general] -- alice quit")
	// alice's client tries again with the old password, which no longer works.
	alice.expectExit(exitAuthFailed)

	carol.expect("[notice] you are no longer an admin")
	carol.send("/kick bob", "/bans")
	carol.expect("[error] line 2: /kick is for admins only")
	carol.expect("[error] line 3: /bans is for admins only")
	if bob.exited() {
		t.Fatal("a kick by a former admin ended bob's session")
	}
	// carol's password did not change: her session goes on.
	carol.send("still here")
	bob.expect("[#general] carol: still here")

	carol.closeStdin()
	carol.expectExit(exitError) // the refused commands
	bob.closeStdin()
	bob.expectExit(exitOK)
	s.stop()
}

// TestE2ESessionLimit checks --max-sessions end to end: a login over the
// cap is refused with the server's reason, and the account's session that
// is in goes on.
func TestE2ESessionLimit(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	s := e.serve("tcp", "127.0.0.1:0", filepath.Join(e.dir, "state"), "--max-sessions", "1")
	alice := s.heldClient("alice")
	second := s.client("alice", []string{"one too many"}, "--no-reconnect")
	second.expectExit(exitConnectLost)
	if !strings.Contains(second.stderr(), "alice already has 1 session(s), the most allowed") {
		t.Errorf("the refused client should say why: %q", second.stderr())
	}
	alice.send("still in")
	alice.expect("[#general] alice: still in")
	alice.closeStdin()
	alice.expectExit(exitOK)
	s.stop()
}

// tmuxSession drives an interactive client in a tmux session on a tmux
// server of its own (a socket in the test's directory), so that nothing
// else is touched and nothing is left behind.
type tmuxSession struct {
	t      *testing.T
	env    []string
	socket string
	name   string
}

func (m *tmuxSession) tmux(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tmux", append([]string{"-S", m.socket, "-f", "/dev/null"}, args...)...)
	cmd.Env = m.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (m *tmuxSession) keys(args ...string) {
	m.t.Helper()
	if _, err := m.tmux(append([]string{"send-keys", "-t", m.name}, args...)...); err != nil {
		m.t.Fatal(err)
	}
}

// typeText types s as literal keys, one key at a time.
func (m *tmuxSession) typeText(s string) {
	m.t.Helper()
	for _, r := range s {
		m.keys("-l", string(r))
	}
}

// screen returns the pane with its scrollback, wrapped lines joined and
// trailing blanks removed.
func (m *tmuxSession) screen() []string {
	m.t.Helper()
	out, err := m.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", m.name)
	if err != nil {
		m.t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		lines = append(lines, strings.TrimRight(l, " "))
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// waitScreen re-captures the pane until cond holds. tmux tells a plain
// client nothing when a pane changes, so this polls on a short ticker; the
// deadline only turns a hang into a failure.
func (m *tmuxSession) waitScreen(what string, cond func(lines []string) bool) []string {
	m.t.Helper()
	deadline := time.Now().Add(e2eWait)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		lines := m.screen()
		if cond(lines) {
			return lines
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("the terminal never showed %s; it shows:\n%s", what, strings.Join(lines, "\n"))
		}
		<-tick.C
	}
}

func (m *tmuxSession) waitText(s string) []string {
	m.t.Helper()
	return m.waitScreen(fmt.Sprintf("%q", s), func(lines []string) bool {
		return strings.Contains(strings.Join(lines, "\n"), s)
	})
}

func lastLine(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

var tickLineRE = regexp.MustCompile(`^(?:\d\d:\d\d )?#general <bob> tick (\d+)$`)

// maxTick is the highest "tick N" message from bob on the screen.
func maxTick(lines []string) int {
	n := 0
	for _, l := range lines {
		if m := tickLineRE.FindStringSubmatch(l); m != nil {
			v, _ := strconv.Atoi(m[1])
			n = max(n, v)
		}
	}
	return n
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestE2EInteractive uses the terminal client in tmux as a person would:
// the first-contact host key question, typing while messages arrive, and
// Tab completion of a nick.
func TestE2EInteractive(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed; the interactive end-to-end test drives the client in tmux (CI installs it)")
	}
	for _, tr := range e2eTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t)
			s := e.serve(tr, "127.0.0.1:0", filepath.Join(e.dir, "state"), "--flood-rate", "-1")
			bob := s.heldClient("bob")
			bob.expect("[#general] -- bob joined")

			kh := e.knownHosts()
			rcFile := filepath.Join(e.dir, "interactive.rc")
			client := strings.Join([]string{"env", "SECURECHAT_PASSWORD=" + shellQuote(e2ePassword("alice")),
				shellQuote(e.bin), "connect", "--transport", tr, "--user", "alice",
				"--known-hosts", shellQuote(kh), "--host-key-check", "ask", s.addr}, " ")
			m := &tmuxSession{t: t, env: e.env, socket: filepath.Join(e.dir, "tmux.sock"),
				name: "e2e-" + tr}
			if _, err := m.tmux("new-session", "-d", "-s", m.name, "-x", "100", "-y", "30",
				client+"; echo $? > "+shellQuote(rcFile)); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if t.Failed() {
					if out, err := m.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", m.name); err == nil {
						t.Logf("terminal at the end:\n%s", out)
					}
				}
				// Only the session and the tmux server of this test's socket.
				m.tmux("kill-session", "-t", m.name)
				m.tmux("kill-server")
			})

			// First contact: OpenSSH's question, answered with yes.
			m.waitText("Are you sure you want to continue connecting (yes/no/[fingerprint])?")
			scr := strings.Join(m.screen(), "\n")
			for _, want := range []string{"The authenticity of host", s.fingerprint} {
				if !strings.Contains(scr, want) {
					t.Errorf("the host key question lacks %q:\n%s", want, scr)
				}
			}
			m.typeText("yes")
			m.keys("Enter")
			m.waitText("logged in as alice")
			m.waitScreen("the prompt", func(l []string) bool { return lastLine(l) == "[#general] >" })
			if n := strings.Count(strings.Join(m.screen(), "\n"), "Warning: Permanently added '"+s.addr+"'"); n != 1 {
				t.Errorf("the note that the key was recorded appears %d times, want once", n)
			}
			if b, err := os.ReadFile(kh); err != nil || !strings.Contains(string(b), s.addr) {
				t.Errorf("the accepted key was not recorded in %s: %q, %v", kh, b, err)
			}

			// bob posts every 100 ms while alice types, one key at a time,
			// each key only after a new message has been drawn.
			const ticks = 40
			stop := make(chan struct{})
			var stopOnce sync.Once
			halt := func() { stopOnce.Do(func() { close(stop) }) }
			posted := make(chan struct{})
			go func() {
				defer close(posted)
				tk := time.NewTicker(100 * time.Millisecond)
				defer tk.Stop()
				for i := 1; i <= ticks; i++ {
					select {
					case <-tk.C:
					case <-stop:
						return
					}
					if _, err := fmt.Fprintf(bob.stdin, "tick %d\n", i); err != nil {
						return
					}
				}
			}()
			t.Cleanup(func() { halt(); <-posted })

			typed := ""
			for _, r := range "hello wor" {
				seen := maxTick(m.screen())
				m.typeText(string(r))
				typed += string(r)
				// capture-pane drops trailing blanks, so a typed space shows
				// only once something follows it.
				want := strings.TrimRight("[#general] > "+typed, " ")
				m.waitScreen(fmt.Sprintf("%q on the prompt line after a new message", want), func(l []string) bool {
					if lastLine(l) != want {
						return false
					}
					n := maxTick(l)
					return n > seen || n == ticks
				})
			}
			<-posted
			// A capture can fall between printing a message and redrawing
			// the prompt below it: wait (bounded) for the prompt to be back
			// under the last tick, with the typed text on it.
			lines := m.waitScreen(`the last tick, with "[#general] > hello wor" redrawn under it`, func(l []string) bool {
				return maxTick(l) == ticks && lastLine(l) == "[#general] > hello wor"
			})
			for _, l := range lines[:len(lines)-1] {
				if strings.Contains(l, "tick") && !tickLineRE.MatchString(l) {
					t.Errorf("a message line is garbled: %q", l)
				}
				if strings.Contains(l, "hello wor") {
					t.Errorf("the typed text leaked above the prompt: %q", l)
				}
			}
			var got []int
			for _, l := range lines {
				if mm := tickLineRE.FindStringSubmatch(l); mm != nil {
					v, _ := strconv.Atoi(mm[1])
					got = append(got, v)
				}
			}
			if len(got) != ticks {
				t.Errorf("%d tick lines on screen, want %d", len(got), ticks)
			}
			for i, v := range got {
				if v != i+1 {
					t.Errorf("tick line %d says %d", i+1, v)
					break
				}
			}

			m.typeText("ld")
			m.keys("Enter")
			bob.expect("[#general] alice: hello world")
			m.waitScreen("the sent line and an empty prompt", func(l []string) bool {
				return lastLine(l) == "[#general] >" && strings.Contains(strings.Join(l, "\n"), "<alice> hello world")
			})

			// Tab completes a nick at the start of the line, IRC style.
			m.typeText("bo")
			m.keys("Tab")
			m.waitScreen(`"bob:" completed on the prompt`, func(l []string) bool { return lastLine(l) == "[#general] > bob:" })
			m.typeText("hi there")
			m.keys("Enter")
			bob.expect("[#general] alice: bob: hi there")

			if n := bob.countLines("alice: hello world"); n != 1 {
				t.Errorf("bob got alice's line %d times", n)
			}
			if n := strings.Count(strings.Join(m.screen(), "\n"), "<alice> hello world"); n != 1 {
				t.Errorf("alice's terminal shows her line %d times", n)
			}

			m.typeText("/quit")
			m.keys("Enter")
			bob.expect("[#general] -- alice quit")
			rc := waitFile(t, rcFile)
			if strings.TrimSpace(rc) != "0" {
				t.Errorf("interactive client exit code %q, want 0", strings.TrimSpace(rc))
			}
			bob.closeStdin()
			bob.expectExit(exitOK)
		})
	}
}

// waitFile waits for a file that a shell writes in one go when a command
// ends. Nothing announces it, so it is polled with a deadline.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(path)
		if err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not written within %s", path, e2eWait)
		}
		<-tick.C
	}
}
