package tui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"securechat/chat"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// vtScreen is a small VT100 model: enough of ECMA-48 to replay what the line
// editor and the UI write (text with pending wrap, CR, LF, BEL, cursor
// movement CUU/CUD/CUF/CUB, EL, SGR ignored) and to say what a user would
// see. It also keeps the raw bytes and counts bells and OSC strings.
type vtScreen struct {
	mu      sync.Mutex
	width   int
	rows    [][]rune
	x, y    int
	raw     []byte
	bells   int
	oscs    int
	state   int // 0 ground, 1 after ESC, 2 in CSI, 3 in OSC, 4 ESC inside OSC
	params  []byte
	partial []byte // incomplete UTF-8 at the end of the last write
	err     error
	stalls  int
	changed chan struct{}
	fed     int64 // bytes fed so far
}

// outputStall is how long a test waits for terminal output that does not
// come before failing. It only bounds a failing test; passing tests never
// come near it.
const outputStall = 20 * time.Second

func newVTScreen(width int) *vtScreen {
	return &vtScreen{width: width, rows: [][]rune{nil}, changed: make(chan struct{})}
}

func (s *vtScreen) feed(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw = append(s.raw, p...)
	s.fed += int64(len(p))
	buf := append(s.partial, p...)
	s.partial = nil
	for len(buf) > 0 {
		if buf[0] >= 0x80 && !utf8.FullRune(buf) {
			s.partial = append([]byte(nil), buf...)
			break
		}
		r, size := utf8.DecodeRune(buf)
		buf = buf[size:]
		s.put(r)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *vtScreen) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
	close(s.changed)
	s.changed = make(chan struct{})
}

// stall records that no output came for outputStall, which wakes waiters
// so that a test waiting for output that never comes fails instead of
// hanging.
func (s *vtScreen) stall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stalls++
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *vtScreen) row(y int) []rune {
	for len(s.rows) <= y {
		s.rows = append(s.rows, nil)
	}
	return s.rows[y]
}

func (s *vtScreen) put(r rune) {
	switch s.state {
	case 1:
		switch r {
		case '[':
			s.state, s.params = 2, s.params[:0]
		case ']':
			s.state = 3
			s.oscs++
		default:
			s.state = 0
		}
		return
	case 2:
		if r >= 0x20 && r <= 0x3f {
			s.params = append(s.params, byte(r))
			return
		}
		s.state = 0
		s.csi(r)
		return
	case 3:
		switch r {
		case 0x07:
			s.state = 0
		case 0x1b:
			s.state = 4
		}
		return
	case 4:
		s.state = 0
		return
	}
	switch {
	case r == 0x1b:
		s.state = 1
	case r == '\r':
		s.x = 0
	case r == '\n':
		s.y++
		s.row(s.y)
	case r == 0x07:
		s.bells++
	case r < 0x20 || r == 0x7f:
	default:
		if s.x >= s.width { // pending wrap
			s.x = 0
			s.y++
		}
		row := s.row(s.y)
		for len(row) <= s.x {
			row = append(row, ' ')
		}
		row[s.x] = r
		s.rows[s.y] = row
		s.x++
	}
}

func (s *vtScreen) csi(final rune) {
	p := string(s.params)
	n, err := strconv.Atoi(p)
	if err != nil || n == 0 {
		n = 1
	}
	switch final {
	case 'A':
		s.y = max(s.y-n, 0)
	case 'B':
		s.y += n
		s.row(s.y)
	case 'C':
		s.x = min(s.x+n, s.width-1)
	case 'D':
		s.x = max(min(s.x, s.width-1)-n, 0)
	case 'J': // ED: erase below (only the form the UI sends)
		if s.x < len(s.row(s.y)) {
			s.rows[s.y] = s.rows[s.y][:s.x]
		}
		s.rows = s.rows[:s.y+1]
	case 'K':
		row := s.row(s.y)
		switch p {
		case "", "0":
			if s.x < len(row) {
				s.rows[s.y] = row[:s.x]
			}
		case "2":
			s.rows[s.y] = nil
		}
	}
}

// lines returns the visible rows, trailing blanks trimmed. Call with mu held.
func (s *vtScreen) lines() []string {
	out := make([]string, len(s.rows))
	for i, r := range s.rows {
		out[i] = strings.TrimRight(string(r), " ")
	}
	return out
}

func (s *vtScreen) dump() string {
	var b strings.Builder
	for i, l := range s.lines() {
		fmt.Fprintf(&b, "%3d|%s\n", i, l)
	}
	fmt.Fprintf(&b, "cursor at row %d col %d", s.y, s.x)
	return b.String()
}

// tuiHarness runs a UI over two net.Pipes: keystrokes in, terminal
// output into a vtScreen. net.Pipe deadlines keep a broken test from hanging.
type tuiHarness struct {
	t    *testing.T
	ui   *UI
	keys net.Conn
	scr  *vtScreen
	out  *countingWriter
}

func newTUIHarness(t *testing.T, opts Options) *tuiHarness {
	t.Helper()
	uiIn, keys := net.Pipe()
	uiOut, screenEnd := net.Pipe()
	scr := newVTScreen(80)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		buf := make([]byte, 4096)
		for {
			screenEnd.SetReadDeadline(time.Now().Add(outputStall))
			n, err := screenEnd.Read(buf)
			if n > 0 {
				scr.feed(buf[:n])
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				scr.stall()
				continue
			}
			if err != nil {
				scr.fail(err)
				return
			}
		}
	}()
	out := &countingWriter{w: uiOut}
	ui := New(struct {
		io.Reader
		io.Writer
	}{uiIn, out}, opts)
	t.Cleanup(func() {
		keys.Close()
		uiIn.Close()
		uiOut.Close()
		screenEnd.Close()
		<-drained
	})
	return &tuiHarness{t: t, ui: ui, keys: keys, scr: scr, out: out}
}

// countingWriter counts what the UI has written to the screen's pipe.
type countingWriter struct {
	w       io.Writer
	written atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// resize narrows or widens the screen as a terminal does, once every byte
// the UI wrote before it has reached the screen: the pipe's Write returns
// when the bytes are read, a moment before they are fed, and a rewrap in
// that moment would apply the old width's redraw to the new width.
func (h *tuiHarness) resize(width int) {
	h.t.Helper()
	h.waitFor("the output so far to reach the screen", func(s *vtScreen) bool { return s.fed >= h.out.written.Load() })
	h.scr.resize(width)
}

func (h *tuiHarness) typeKeys(s string) {
	h.t.Helper()
	h.keys.SetWriteDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(h.keys, s); err != nil {
		h.t.Fatalf("typing %q: %v", s, err)
	}
}

// waitFor blocks until pred holds for the screen. pred runs with the screen
// locked.
func (h *tuiHarness) waitFor(what string, pred func(s *vtScreen) bool) {
	h.t.Helper()
	h.scr.mu.Lock()
	stalls := h.scr.stalls
	h.scr.mu.Unlock()
	for {
		h.scr.mu.Lock()
		if pred(h.scr) {
			h.scr.mu.Unlock()
			return
		}
		if h.scr.err != nil || h.scr.stalls != stalls {
			dump := h.scr.dump()
			h.scr.mu.Unlock()
			h.t.Fatalf("never saw %s (output error: %v); screen:\n%s", what, h.scr.err, dump)
		}
		ch := h.scr.changed
		h.scr.mu.Unlock()
		<-ch
	}
}

// waitRow waits until the row holding the cursor reads want.
func (h *tuiHarness) waitCursorRow(want string) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("cursor row %q", want), func(s *vtScreen) bool {
		return s.y < len(s.rows) && strings.TrimRight(string(s.rows[s.y]), " ") == want
	})
}

// waitRaw waits until the raw output contains sub.
func (h *tuiHarness) waitRaw(sub string) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("raw %q", sub), func(s *vtScreen) bool {
		return strings.Contains(string(s.raw), sub)
	})
}

type lineResult struct {
	line string
	err  error
}

func (h *tuiHarness) readLineAsync() <-chan lineResult {
	ch := make(chan lineResult, 1)
	go func() {
		line, err := h.ui.ReadLine()
		ch <- lineResult{line, err}
	}()
	return ch
}

func (h *tuiHarness) expectLine(ch <-chan lineResult, want string) {
	h.t.Helper()
	r := <-ch
	if r.err != nil || r.line != want {
		h.t.Fatalf("ReadLine = %q, %v; want %q, nil", r.line, r.err, want)
	}
}

func monoOpts() Options {
	return Options{Self: "carol", NoColor: true, NoTimestamps: true}
}

func TestTermUIShowWhileTyping(t *testing.T) {
	h := newTUIHarness(t, monoOpts())
	h.ui.SetRoom("#general")
	res := h.readLineAsync()
	h.typeKeys("hello wor")
	h.waitCursorRow("[#general] > hello wor")

	const n = 100
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range n / 4 {
				h.ui.Show(Event{Kind: "msg", Room: "#general", From: "alice",
					Text: fmt.Sprintf("line %d-%02d", g, i)})
			}
		})
	}
	for _, c := range "ld" {
		h.typeKeys(string(c))
	}
	wg.Wait()

	const prompt = "[#general] > hello world"
	h.waitFor("every shown line above the intact input", func(s *vtScreen) bool {
		ls := s.lines()
		if len(ls) != n+1 || ls[n] != prompt || s.y != n || s.x != len(prompt) {
			return false
		}
		seen := make(map[string]bool)
		for _, l := range ls[:n] {
			seen[l] = true
		}
		for g := range 4 {
			for i := range n / 4 {
				if !seen[fmt.Sprintf("#general <alice> line %d-%02d", g, i)] {
					return false
				}
			}
		}
		return true
	})

	h.typeKeys("\r")
	h.expectLine(res, "hello world")
	// The echoed input is erased; the next line lands where it was.
	h.waitFor("input erased", func(s *vtScreen) bool {
		return s.y == n && s.x == 0 && !slices.Contains(s.lines(), prompt)
	})
	h.ui.Show(Event{Kind: "msg", Room: "#general", From: "carol", Text: "hello world"})
	h.waitFor("server echo in place of the input", func(s *vtScreen) bool {
		ls := s.lines()
		return len(ls) > n && ls[n] == "#general <carol> hello world"
	})
}

func TestTermUIEraseWrappedInput(t *testing.T) {
	for _, n := range []int{5, 18, 30, 38, 60} { // with "> " (2): one row, exact width, wrapped, exact 2 rows, 4 rows
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			h := newTUIHarness(t, monoOpts())
			h.scr.mu.Lock()
			h.scr.width = 20
			h.scr.mu.Unlock()
			h.ui.SetSize(20, 24)
			h.ui.Show(Event{Kind: "system", Text: "above"})
			h.waitRaw("above")
			res := h.readLineAsync()
			input := strings.Repeat("x", n)
			h.typeKeys(input + "\r")
			h.expectLine(res, input)
			h.ui.Show(Event{Kind: "system", Text: "below"})
			h.waitFor("input erased", func(s *vtScreen) bool {
				ls := s.lines()
				for len(ls) > 0 && ls[len(ls)-1] == "" {
					ls = ls[:len(ls)-1]
				}
				return slices.Equal(ls, []string{"-- above", "-- below"})
			})
		})
	}
}

func TestTermUIInterruptAndEOF(t *testing.T) {
	expectEOF := func(h *tuiHarness, res <-chan lineResult) {
		h.t.Helper()
		if r := <-res; !errors.Is(r.err, io.EOF) || r.line != "" {
			h.t.Fatalf("ReadLine = %q, %v; want io.EOF", r.line, r.err)
		}
		// Once ended, input stays ended.
		if line, err := h.ui.ReadLine(); !errors.Is(err, io.EOF) {
			h.t.Fatalf("ReadLine after the end = %q, %v; want io.EOF", line, err)
		}
	}

	t.Run("ctrl-c clears the line, then quits", func(t *testing.T) {
		h := newTUIHarness(t, monoOpts())
		res := h.readLineAsync()
		h.typeKeys("abc")
		h.waitCursorRow("> abc")
		h.typeKeys("\x03")
		h.waitCursorRow(">")
		h.typeKeys("xyz\r")
		h.expectLine(res, "xyz")

		res = h.readLineAsync()
		h.typeKeys("\x03")
		expectEOF(h, res)
	})

	t.Run("ctrl-c that clears says how to quit", func(t *testing.T) {
		h := newTUIHarness(t, monoOpts())
		res := h.readLineAsync()
		h.typeKeys("abc\x03")
		h.waitFor("the hint that a second Ctrl-C quits", func(s *vtScreen) bool {
			return strings.Contains(strings.Join(s.lines(), "\n"), "line cleared: Ctrl-C again quits")
		})
		h.waitCursorRow(">")
		h.typeKeys("xyz\x03")
		h.waitCursorRow(">")
		h.typeKeys("ok\r")
		h.expectLine(res, "ok")
		h.scr.mu.Lock()
		screen := strings.Join(h.scr.lines(), "\n")
		h.scr.mu.Unlock()
		if n := strings.Count(screen, "Ctrl-C again quits"); n != 1 {
			t.Errorf("the hint is shown %d times, want once", n)
		}
	})

	t.Run("ctrl-d deletes, then quits", func(t *testing.T) {
		h := newTUIHarness(t, monoOpts())
		res := h.readLineAsync()
		h.typeKeys("q\x04")    // at the end of the line: nothing to delete
		h.typeKeys("\x01\x04") // Home, then delete the q
		h.waitCursorRow(">")
		h.typeKeys("\x04")
		expectEOF(h, res)
	})

	t.Run("typed BEL is dropped", func(t *testing.T) {
		h := newTUIHarness(t, monoOpts())
		res := h.readLineAsync()
		h.typeKeys("\x07a\x07b\r")
		h.expectLine(res, "ab")
	})

	t.Run("CRLF is one Enter", func(t *testing.T) {
		h := newTUIHarness(t, monoOpts())
		res := h.readLineAsync()
		h.typeKeys("one\r\n")
		h.expectLine(res, "one")
		res = h.readLineAsync()
		h.typeKeys("two\n")
		h.expectLine(res, "two")
	})

	t.Run("end of input", func(t *testing.T) {
		h := newTUIHarness(t, monoOpts())
		res := h.readLineAsync()
		h.typeKeys("partial")
		h.keys.Close()
		expectEOF(h, res)
	})
}

func TestTermUIKeyAliases(t *testing.T) {
	h := newTUIHarness(t, monoOpts())
	tests := []struct{ keys, want string }{
		{"bc\x1b[1~a\r", "abc"},                   // Home (tmux, screen)
		{"bc\x1b[7~a\r", "abc"},                   // Home (rxvt)
		{"bc\x1bOHa\r", "abc"},                    // Home (application mode)
		{"bc\x1b[H\x1b[4~a\r", "bca"},             // End (tmux)
		{"bc\x1b[H\x1bOFa\r", "bca"},              // End (application mode)
		{"one two\x1b[1;5DX\r", "one Xtwo"},       // Ctrl-Left
		{"one two\x1b[H\x1b[1;5CX\r", "one Xtwo"}, // Ctrl-Right
		{"ab\x1b[5~c\r", "abc"},                   // PgUp: ignored
		{strings.Repeat("z", 300) + "\x1b[1~a\r", "a" + strings.Repeat("z", 300)}, // across reads
	}
	for _, tt := range tests {
		res := h.readLineAsync()
		h.typeKeys(tt.keys)
		h.expectLine(res, tt.want)
	}
}

func TestTermUIHistory(t *testing.T) {
	h := newTUIHarness(t, monoOpts())
	for _, l := range []string{"first", "second", "second", "", "   "} {
		res := h.readLineAsync()
		h.typeKeys(l + "\r")
		h.expectLine(res, l)
	}
	// Blank lines and the repeated "second" were not recorded, so two Ups
	// reach "first".
	res := h.readLineAsync()
	h.typeKeys("\x1b[A\x1b[A\r")
	h.expectLine(res, "first")
	res = h.readLineAsync()
	h.typeKeys("\x1b[A\r")
	h.expectLine(res, "first")
}

func TestInputHistoryBound(t *testing.T) {
	hist := &inputHistory{max: 3}
	for _, s := range []string{"a", "b", "c", "d"} {
		hist.Add(s)
	}
	if hist.Len() != 3 || hist.At(0) != "d" || hist.At(2) != "b" {
		t.Fatalf("history = %q, want newest d, oldest b, 3 entries", hist.entries)
	}
}

func TestTermUITabCompletionTyped(t *testing.T) {
	h := newTUIHarness(t, monoOpts())
	h.ui.SetNicks([]string{"alice", "bob", "carol"})
	res := h.readLineAsync()
	h.typeKeys("bo\t")
	h.waitCursorRow("> bob:")
	h.typeKeys("hi\r")
	h.expectLine(res, "bob: hi")
}

// TestTermUITabCycles: with several candidates, the first Tab completes
// their common prefix and lists them once; each further Tab puts the next
// candidate in place, round and round, as irssi does.
func TestTermUITabCycles(t *testing.T) {
	h := newTUIHarness(t, monoOpts())
	h.ui.SetNicks([]string{"alice", "bob", "bobby", "bobcat"})
	res := h.readLineAsync()
	h.typeKeys("hi bo\t")
	h.waitCursorRow("> hi bob")
	h.waitFor("the candidates listed", func(s *vtScreen) bool {
		return slices.Contains(s.lines(), "-- bob bobby bobcat")
	})
	for _, want := range []string{"> hi bob ", "> hi bobby ", "> hi bobcat ", "> hi bob "} {
		h.typeKeys("\t")
		h.waitCursorRow(strings.TrimRight(want, " "))
	}
	h.typeKeys("x\r")
	h.expectLine(res, "hi bob x")
	h.scr.mu.Lock()
	n := 0
	for _, l := range h.scr.lines() {
		if l == "-- bob bobby bobcat" {
			n++
		}
	}
	h.scr.mu.Unlock()
	if n != 1 {
		t.Errorf("the candidates were listed %d times, want once", n)
	}
}

// TestDefaultCommandsFromChat: completion offers every command of chat's
// table, the client's own and the aliases, without a list of its own.
func TestDefaultCommandsFromChat(t *testing.T) {
	got := defaultCommands()
	for _, c := range append(chat.Commands(), chat.ClientCommands()...) {
		for _, n := range append([]string{c.Name}, c.Aliases...) {
			if !slices.Contains(got, "/"+n) {
				t.Errorf("completion lacks /%s", n)
			}
		}
	}
	for _, n := range []string{"/reply", "/ignore", "/unignore", "/fingerprint", "/query"} {
		if !slices.Contains(got, n) {
			t.Errorf("completion lacks %s", n)
		}
	}
}

func TestTermUIComplete(t *testing.T) {
	ui := New(struct {
		io.Reader
		io.Writer
	}{strings.NewReader(""), io.Discard}, Options{Self: "carol"})
	ui.SetNicks([]string{"alice", "bob", "bobby", "carol", "dave", "Dan", "bob"})
	tests := []struct {
		line    string
		pos     int
		want    string
		wantPos int
		ok      bool
	}{
		{"al", 2, "alice: ", 7, true},
		{"ALI", 3, "alice: ", 7, true},
		{"hi al", 5, "hi alice ", 9, true},
		{"/msg al", 7, "/msg alice ", 11, true},
		{"al world", 2, "alice: world", 6, true}, // no doubled space
		{"hi al world", 5, "hi alice world", 8, true},
		{"/jo", 3, "/join ", 6, true},
		{"/q", 2, "/qu", 3, true},    // /query and /quit: common prefix
		{"bo", 2, "bob", 3, true},    // bob and bobby: common prefix
		{"bob", 3, "bob: ", 5, true}, // already the common prefix: the first candidate
		{"da", 2, "Dan: ", 5, true},  // dave and Dan share only "da": the first
		{"ca", 2, "", 0, false},      // the own nick is skipped
		{"x", 1, "", 0, false},       // no match
		{"", 0, "", 0, false},        // nothing to complete
		{"hi ", 3, "", 0, false},     // empty word
		{"/", 1, "/away ", 6, true},  // every command: no common extension, the first
		{"hi /jo", 6, "", 0, false},  // commands only at the start
		{"/nosuch", 7, "", 0, false}, // unknown command
		{"al", 9, "", 0, false},      // bad cursor
	}
	for _, tt := range tests {
		got, pos, ok := ui.onKey(tt.line, tt.pos, '\t')
		if ok != tt.ok || (ok && (got != tt.want || pos != tt.wantPos)) {
			t.Errorf("complete(%q, %d) = %q, %d, %v; want %q, %d, %v",
				tt.line, tt.pos, got, pos, ok, tt.want, tt.wantPos, tt.ok)
		}
	}

	// Other keys are left to the line editor.
	if _, _, ok := ui.onKey("al", 2, 'x'); ok {
		t.Error("onKey took over a printable key")
	}

	ui.SetCommands([]string{"/jump", "/join"})
	if got, _, _ := ui.onKey("/ju", 3, '\t'); got != "/jump " {
		t.Errorf("after SetCommands: %q, want %q", got, "/jump ")
	}
	ui.SetSelf("dave")
	if got, _, _ := ui.onKey("ca", 2, '\t'); got != "carol: " {
		t.Errorf("after SetSelf: %q, want %q", got, "carol: ")
	}
	if got, _, _ := ui.onKey("Da", 2, '\t'); got != "Dan: " {
		t.Errorf("after SetSelf, own nick still offered: %q, want %q", got, "Dan: ")
	}
}

func TestTermUIColour(t *testing.T) {
	ev := Event{Kind: "msg", Room: "#general", From: "alice", Text: "colour test"}
	alice := fmt.Sprintf("\x1b[38;5;%dmalice", nickColor("alice"))
	tests := []struct {
		name    string
		noColor string
		opt     bool
		want    bool
	}{
		{"default", "", false, true},
		{"NO_COLOR", "1", false, false},
		{"NO_COLOR any value", "false", false, false},
		{"option", "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NO_COLOR", tt.noColor)
			h := newTUIHarness(t, Options{Self: "carol", NoColor: tt.opt, NoTimestamps: true})
			h.ui.Show(ev)
			h.waitRaw("colour test\r\n")
			raw := string(h.scr.raw)
			if got := strings.Contains(raw, alice); got != tt.want {
				t.Errorf("coloured nick = %v, want %v; output %q", got, tt.want, raw)
			}
			if !tt.want && strings.Contains(raw, "\x1b[38;5;") {
				t.Errorf("colour escape in monochrome output %q", raw)
			}
		})
	}
}

func TestNickPalette(t *testing.T) {
	if len(nickPalette) < 30 {
		t.Fatalf("palette has only %d colours", len(nickPalette))
	}
	for _, c := range nickPalette {
		switch {
		case c < 16 || c > 231:
			t.Errorf("colour %d outside the 6x6x6 cube (system colours and greys excluded)", c)
		case c >= 16 && c <= 21:
			t.Errorf("colour %d is black or dark blue", c)
		case c == 52 || c == 53 || c == 88:
			t.Errorf("colour %d is too dark", c)
		case c == 231 || c == 230 || c == 195 || c == 225 || c == 189 || c == 194:
			t.Errorf("colour %d is near white", c)
		case c == 226 || c == 227 || c == 228 || c == 229:
			t.Errorf("colour %d is pale yellow, unreadable on white", c)
		}
	}
	if nickColor("Alice") != nickColor("alice") {
		t.Error("nick colour depends on case")
	}
	distinct := make(map[int]bool)
	for i := range 100 {
		distinct[nickColor(fmt.Sprintf("user%d", i))] = true
	}
	if len(distinct) < 25 {
		t.Errorf("100 nicks got only %d colours", len(distinct))
	}
}

func TestTermUIMentions(t *testing.T) {
	h := newTUIHarness(t, monoOpts())
	steps := []struct {
		ev        Event
		bells     int // total so far
		highlight bool
	}{
		{Event{Kind: "msg", Room: "#g", From: "alice", Text: "hi carol! [1]"}, 1, true},
		{Event{Kind: "msg", Room: "#g", From: "alice", Text: "CAROL: hi [2]"}, 2, true},
		{Event{Kind: "msg", Room: "#g", From: "alice", Text: "caroline and xcarol, carol_2 [3]"}, 2, false},
		{Event{Kind: "msg", Room: "#g", From: "carol", Text: "carol here [4]"}, 2, false},
		{Event{Kind: "msg", Room: "#g", From: "alice", Text: "carol? [5]", History: true}, 2, true},
		{Event{Kind: "me", Room: "#g", From: "bob", Text: "pokes carol [6]"}, 3, true},
		{Event{Kind: "dm", From: "alice", To: "carol", Text: "psst [7]"}, 4, false},
		{Event{Kind: "dm", From: "carol", To: "alice", Text: "reply [8]"}, 4, false},
		{Event{Kind: "dm", From: "alice", To: "carol", Text: "old [9]", History: true}, 4, false},
		{Event{Kind: "topic", Room: "#g", From: "alice", Text: "carol rules [10]"}, 4, false},
		{Event{Kind: "msg", Room: "#g", From: "alice", Text: "nothing [11]"}, 4, false},
	}
	for i, st := range steps {
		h.ui.Show(st.ev)
		token := fmt.Sprintf("[%d]", i+1)
		h.waitFor("line "+token, func(s *vtScreen) bool {
			i := strings.Index(string(s.raw), token)
			return i >= 0 && strings.Contains(string(s.raw[i:]), "\r\n")
		})
		h.scr.mu.Lock()
		bells := h.scr.bells
		raw := string(h.scr.raw)
		h.scr.mu.Unlock()
		if bells != st.bells {
			t.Errorf("after %q: %d bells, want %d", st.ev.Text, bells, st.bells)
		}
		end := strings.Index(raw, token)
		line := raw[strings.LastIndex(raw[:end], "\n")+1 : end]
		if got := strings.Contains(line, sgrHighlight); got != st.highlight {
			t.Errorf("after %q: highlighted = %v, want %v (%q)", st.ev.Text, got, st.highlight, line)
		}
	}
	// The highlight wraps the nick itself.
	if raw := string(h.scr.raw); !strings.Contains(raw, "hi "+sgrHighlight+"carol"+sgrReset+"! [1]") {
		t.Errorf("highlight not around the nick: %q", raw)
	}

	quiet := newTUIHarness(t, Options{Self: "carol", NoColor: true, NoBell: true})
	quiet.ui.Show(Event{Kind: "msg", Room: "#g", From: "alice", Text: "hi carol [q]"})
	quiet.waitRaw("[q]\r\n")
	quiet.scr.mu.Lock()
	defer quiet.scr.mu.Unlock()
	if quiet.scr.bells != 0 {
		t.Errorf("NoBell: %d bells", quiet.scr.bells)
	}
	if !strings.Contains(string(quiet.scr.raw), sgrHighlight+"carol") {
		t.Errorf("NoBell: mention not highlighted")
	}
}

func TestTermUISanitises(t *testing.T) {
	h := newTUIHarness(t, Options{Self: "carol"})
	h.ui.SetRoom("#r\x1b]0;title\a")
	h.ui.Show(Event{
		Kind: "msg",
		Room: "#x\u009b2J",
		From: "ev\x1b[31mil",
		Text: "a\x1b[2Jb\x1b]0;pwned\a c\x1b[1;1H\u202eend\x7f\x00\u009b6n",
	})
	h.waitRaw("end")
	h.waitRaw("\r\n")
	h.scr.mu.Lock()
	defer h.scr.mu.Unlock()
	raw := string(h.scr.raw)
	for _, bad := range []string{"\x1b[2J", "\x1b]", "\a", "pwned", "title", "\x1b[31m", "\x1b[1;1H",
		"\u009b", "\u202e", "\x7f", "\x00", "[6n"} {
		if strings.Contains(raw, bad) {
			t.Errorf("output contains %q: %q", bad, raw)
		}
	}
	if h.scr.bells != 0 || h.scr.oscs != 0 {
		t.Errorf("bells %d, OSC strings %d; want none", h.scr.bells, h.scr.oscs)
	}
	if want := "#x <evil> ab cend"; !slices.ContainsFunc(h.scr.lines(), func(l string) bool { return strings.HasSuffix(l, want) }) {
		t.Errorf("no line ending in %q:\n%s", want, h.scr.dump())
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"héllo wörld ✓ 😀", "héllo wörld ✓ 😀"},
		{"clear\x1b[2Jscreen", "clearscreen"},
		{"title\x1b]0;pwned\aafter", "titleafter"},
		{"title\x1b]2;pwned\x1b\\after", "titleafter"},
		{"osc8\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "osc8link"},
		{"dcs\x1bPq#0;2;0;0;0\x1b\\end", "dcsend"},
		{"unterminated\x1b]0;forever", "unterminated"},
		{"c1csi\u009b31mred", "c1csired"},
		{"c1osc\u009d0;t\u009cok", "c1oscok"},
		{"c1\u0085nel\u0090x\u009cy", "c1nely"},
		{"charset\x1b(Bx", "charsetx"},
		{"keypad\x1b=x", "keypadx"},
		{"lone\x1b", "lone"},
		{"esc\x1b\x01x", "escx"},
		{"csi\x1b[1;\x01x", "csix"},
		{"bell\a\a", "bell"},
		{"back\bspace\x7f", "backspace"},
		{"nul\x00byte", "nulbyte"},
		{"tab\there\nnew\rline\vv\ff", "tab here new linevf"},
		{"\u202eevil\u202c \u2066iso\u2069 \u200fmark\u200e\u061c", "evil iso mark"},
		{"bad\xff\xfeutf8", "bad\ufffd\ufffdutf8"},
		{"trunc\xe2\x82", "trunc\ufffd\ufffd"},
		{"raw\x9b6n", "raw\ufffd6n"}, // a lone 0x9b byte is not UTF-8, so not C1 either
	}
	for _, tt := range tests {
		if got := Sanitize(tt.in); got != tt.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// isBidiControl lists the characters that reorder text (Unicode TR9): none
// may survive Sanitize.
func isBidiControl(r rune) bool {
	return r == 0x061c || r == 0x200e || r == 0x200f || r == 0x2028 || r == 0x2029 ||
		(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

func FuzzSanitize(f *testing.F) {
	f.Add("a\x1b[2Jb\x1b]0;x\a\u009b1m\u202e")
	f.Fuzz(func(t *testing.T, s string) {
		out := Sanitize(s)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of %q", s)
		}
		for _, r := range out {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || isBidiControl(r) {
				t.Fatalf("Sanitize(%q) kept %U", s, r)
			}
		}
		if Sanitize(out) != out {
			t.Fatalf("Sanitize not idempotent on %q", s)
		}
	})
}

func TestTermUINewMessagesMarker(t *testing.T) {
	h := newTUIHarness(t, monoOpts())
	at := func(hh, mm int) time.Time { return time.Date(2026, 3, 4, hh, mm, 0, 0, time.Local) }
	show := func(evs ...Event) {
		for _, ev := range evs {
			h.ui.Show(ev)
		}
	}
	show(
		Event{Kind: "msg", Room: "#general", From: "alice", Text: "h1", History: true, Time: at(14, 2)},
		Event{Kind: "join", Room: "#general", From: "bob", History: true, Time: at(14, 3)},
		Event{Kind: "me", Room: "#general", From: "bob", Text: "h2", History: true, Time: at(14, 4)},
		Event{Kind: "msg", Room: "#rust", From: "dave", Text: "r1", History: true, Time: at(13, 0)},
		Event{Kind: "msg", Room: "#general", From: "alice", Text: "h3", History: true, Time: at(14, 5)},
		Event{Kind: "msg", Room: "#general", From: "alice", Text: "live1"},
		Event{Kind: "msg", Room: "#general", From: "alice", Text: "live2"},
	)
	h.ui.EndOfHistory("#rust", 0)
	h.ui.EndOfHistory("#rust", 0) // already ended: nothing
	h.ui.EndOfHistory("#empty", 0)
	show(Event{Kind: "msg", Room: "#rust", From: "dave", Text: "live3"})
	h.ui.EndOfHistory("#ops", 7)
	show(
		Event{Kind: "dm", From: "alice", To: "carol", Text: "d1", History: true},
		Event{Kind: "dm", From: "alice", To: "carol", Text: "live4"},
		// A replay after a reconnect, in a room this UI has seen live.
		Event{Kind: "msg", Room: "#general", From: "alice", Text: "h4", History: true, Time: at(15, 0)},
		Event{Kind: "msg", Room: "#general", From: "alice", Text: "live5"},
		Event{Kind: "system", Text: "end"},
	)
	// The first replay of a room says "earlier": nothing shows that the
	// user was there before. Only a room seen live in this run has "new"
	// messages.
	want := []string{
		"#general <alice> h1",
		"#general --> bob joined",
		"#general * bob h2",
		"#rust <dave> r1",
		"#general <alice> h3",
		"\u2014 3 earlier messages in #general \u2014",
		"#general <alice> live1",
		"#general <alice> live2",
		"\u2014 1 earlier message in #rust \u2014",
		"#rust <dave> live3",
		"\u2014 7 earlier messages in #ops \u2014",
		"[dm] alice -> carol: d1",
		"\u2014 1 earlier message \u2014",
		"[dm] alice -> carol: live4",
		"#general <alice> h4",
		"\u2014 1 new message in #general since 15:00 \u2014",
		"#general <alice> live5",
		"-- end",
	}
	h.waitFor("the marker lines", func(s *vtScreen) bool {
		ls := s.lines()
		return len(ls) > len(want) && slices.Equal(ls[:len(want)], want)
	})
}

func TestTermUISetRoomRedrawsPrompt(t *testing.T) {
	h := newTUIHarness(t, monoOpts())
	res := h.readLineAsync()
	h.typeKeys("abc")
	h.waitCursorRow("> abc")
	h.ui.SetRoom("#rust")
	h.waitCursorRow("[#rust] > abc")
	h.ui.SetRoom("")
	h.waitCursorRow("> abc")
	h.typeKeys("\r")
	h.expectLine(res, "abc")
}

func TestTUIFormatKinds(t *testing.T) {
	when := time.Date(2026, 5, 6, 9, 7, 30, 0, time.Local)
	f := tuiFormatter{timestamps: true, self: "carol"}
	tests := []struct {
		ev   Event
		want string
	}{
		{Event{Kind: "msg", Room: "#g", From: "alice", Text: "hi"}, "09:07 #g <alice> hi"},
		{Event{Kind: "me", Room: "#g", From: "alice", Text: "waves"}, "09:07 #g * alice waves"},
		{Event{Kind: "dm", From: "alice", To: "bob", Text: "psst"}, "09:07 [dm] alice -> bob: psst"},
		{Event{Kind: "notice", Room: "#g", From: "server", Text: "maintenance"}, "09:07 #g -server- maintenance"},
		{Event{Kind: "notice", Text: "hello"}, "09:07 -- hello"},
		{Event{Kind: "join", Room: "#g", From: "bob"}, "09:07 #g --> bob joined"},
		{Event{Kind: "part", Room: "#g", From: "bob", Text: "bye"}, "09:07 #g <-- bob left (bye)"},
		{Event{Kind: "part", Room: "#g", From: "bob"}, "09:07 #g <-- bob left"},
		{Event{Kind: "quit", From: "bob", Text: "timeout"}, "09:07 <-- bob quit (timeout)"},
		{Event{Kind: "topic", Room: "#g", From: "alice", Text: "Go 1.26"}, "09:07 #g -- alice set the topic: Go 1.26"},
		{Event{Kind: "topic", Room: "#g", Text: "Go 1.26"}, "09:07 #g -- topic: Go 1.26"},
		{Event{Kind: "error", Text: "no such room"}, "09:07 !! no such room"},
		{Event{Kind: "system", Text: "connected"}, "09:07 -- connected"},
		{Event{Kind: "msg", Room: "#g", From: "alice", Text: "hi", Sig: SigVerified}, "09:07 ✓ #g <alice> hi"},
		{Event{Kind: "msg", Room: "#g", From: "alice", Text: "hi carol", Sig: SigFailed, SigReason: "key_changed"}, "09:07 !! #g <alice> hi carol [FAILED: key_changed]"},
		{Event{Kind: "dm", From: "alice", To: "carol", Text: "psst", Sig: SigUnsigned}, "09:07 [dm] alice -> carol: psst"},
		{Event{Kind: "msg", Room: "#g", From: "alice", Text: "bob?", Sig: SigFailed, SigReason: "key_pending"}, "09:07 ?? #g <alice> bob? [UNVERIFIED: key_pending]"},
		// History shows the signed time where it differs from the server's.
		{Event{Kind: "msg", Room: "#g", From: "alice", Text: "old", History: true, Sig: SigVerified, Signed: when.Add(-2 * time.Hour)},
			"09:07 ✓ #g <alice> old (signed 07:07)"},
		{Event{Kind: "dm", From: "alice", To: "carol", Text: "queued", History: true, Sig: SigVerified, Signed: when.AddDate(0, 0, -1)},
			"09:07 ✓ [dm] alice -> carol: queued (signed " + when.AddDate(0, 0, -1).Format("Mon 2 Jan 15:04") + ")"},
		{Event{Kind: "msg", Room: "#g", From: "alice", Text: "same", History: true, Sig: SigVerified, Signed: when.Add(-20 * time.Second)},
			"09:07 ✓ #g <alice> same"},
		{Event{Kind: "msg", Room: "#g", From: "alice", Text: "live", Sig: SigVerified, Signed: when.Add(-2 * time.Hour)},
			"09:07 ✓ #g <alice> live"},
		{Event{Kind: "msg", Room: "#g", From: "alice", Text: "bad", History: true, Sig: SigFailed, SigReason: "replayed", Signed: when.Add(-2 * time.Hour)},
			"09:07 !! #g <alice> bad [FAILED: replayed]"},
	}
	for _, tt := range tests {
		tt.ev.Time = when
		if got, _ := f.format(tt.ev); got != tt.want {
			t.Errorf("format(%+v) = %q, want %q", tt.ev, got, tt.want)
		}
	}

	f.timestamps = false
	f.now = func() time.Time { t.Fatal("clock read with timestamps off"); return time.Time{} }
	if got, _ := f.format(Event{Kind: "system", Text: "x"}); got != "-- x" {
		t.Errorf("without timestamps: %q", got)
	}
	f.timestamps = true
	f.now = func() time.Time { return when }
	if got, _ := f.format(Event{Kind: "system", Text: "x"}); got != "09:07 -- x" {
		t.Errorf("zero event time should use the clock: %q", got)
	}

	f.color = true
	got, _ := f.format(Event{Kind: "error", Text: "boom", Time: when})
	if !strings.Contains(got, sgrErr+"!! boom"+sgrReset) {
		t.Errorf("coloured error line %q", got)
	}
}

func TestFormatPlain(t *testing.T) {
	tests := []struct {
		ev   Event
		want string
	}{
		{Event{Kind: "msg", Room: "#general", From: "alice", Text: "text"}, "[#general] alice: text"},
		{Event{Kind: "me", Room: "#general", From: "alice", Text: "waves"}, "[#general] * alice waves"},
		{Event{Kind: "dm", From: "alice", To: "bob", Text: "text"}, "[dm] alice -> bob: text"},
		{Event{Kind: "notice", Room: "#general", From: "ops", Text: "restart at 5"}, "[#general] -ops- restart at 5"},
		{Event{Kind: "notice", Text: "welcome"}, "[notice] welcome"},
		{Event{Kind: "join", Room: "#general", From: "bob"}, "[#general] -- bob joined"},
		{Event{Kind: "part", Room: "#general", From: "bob", Text: "later"}, "[#general] -- bob left (later)"},
		{Event{Kind: "quit", Room: "#general", From: "bob"}, "[#general] -- bob quit"},
		{Event{Kind: "quit", From: "bob", Text: "ping timeout"}, "[system] -- bob quit (ping timeout)"},
		{Event{Kind: "topic", Room: "#general", From: "alice", Text: "hi"}, "[#general] -- alice set the topic: hi"},
		{Event{Kind: "error", Room: "#general", Text: "not allowed"}, "[error] not allowed"},
		{Event{Kind: "error", Text: "too long", Line: 7, Code: "too_long"}, "[error] line 7: too long"},
		{Event{Kind: "system", Text: "connected to example.org"}, "[system] connected to example.org"},
		{Event{Kind: "msg", Room: "#general", From: "alice", Text: "old", History: true}, "[#general] (history) alice: old"},
		{Event{Kind: "dm", From: "a", To: "b", Text: "old", History: true}, "[dm] (history) a -> b: old"},
		{Event{Kind: "msg", Room: "#g", From: "al\x1b[1mice", Text: "two\nlines\x1b]0;t\a"}, "[#g] alice: two lines"},
		{Event{Kind: "msg", Room: "#g", From: "alice", Text: "hi", Sig: SigVerified}, "[#g] alice: hi [verified]"},
		{Event{Kind: "me", Room: "#g", From: "alice", Text: "waves", Sig: SigFailed, SigReason: "replayed"}, "[#g] * alice waves [FAILED: replayed]"},
		{Event{Kind: "dm", From: "a", To: "b", Text: "x", Sig: SigUnsigned}, "[dm] a -> b: x"},
	}
	for _, tt := range tests {
		if got := FormatPlain(tt.ev); got != tt.want {
			t.Errorf("FormatPlain(%+v) = %q, want %q", tt.ev, got, tt.want)
		}
	}
}

func TestFormatJSON(t *testing.T) {
	when := time.Date(2026, 5, 6, 9, 7, 30, 0, time.FixedZone("CEST", 2*3600))
	got, err := FormatJSON(Event{ID: 42, Time: when, Kind: "msg", Room: "#general", From: "alice",
		Text: "a <b> & \"c\"", History: true})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ts":"2026-05-06T07:07:30Z","id":42,"kind":"msg","room":"#general","from":"alice","to":"","text":"a <b> & \"c\"","history":true,"line":0,"code":"","sig":"","sig_reason":""}`
	if string(got) != want {
		t.Errorf("FormatJSON =\n%s\nwant\n%s", got, want)
	}

	kinds := []string{"msg", "me", "dm", "notice", "join", "part", "quit", "topic", "error", "system"}
	for i, kind := range kinds {
		ev := Event{ID: uint64(i), Time: when, Kind: kind, Room: "#r", From: "f", To: "t",
			Text: "x\x1b[2Jy\u202e\nz", Line: i, Code: "c\x1b[0m"}
		b, err := FormatJSON(ev)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if strings.ContainsAny(string(b), "\n\x1b") || strings.Contains(string(b), `\u001b`) {
			t.Errorf("%s: not one clean line: %q", kind, b)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		wantMap := map[string]any{"ts": "2026-05-06T07:07:30Z", "id": float64(i), "kind": kind, "room": "#r",
			"from": "f", "to": "t", "text": "xy z", "history": false, "line": float64(i), "code": "c", "sig": "", "sig_reason": ""}
		if !reflect.DeepEqual(m, wantMap) {
			t.Errorf("%s: got %v, want %v", kind, m, wantMap)
		}
	}

	b, err := FormatJSON(Event{Kind: "msg", Room: "#g", From: "a", Text: "x", Sig: SigFailed, SigReason: "key_changed"})
	if err != nil || !strings.HasSuffix(string(b), `"sig":"failed","sig_reason":"key_changed"}`) {
		t.Errorf("failed message: %s, %v; want sig and sig_reason last", b, err)
	}

	b, err = FormatJSON(Event{Kind: "system", Text: "no time"})
	if err != nil || !strings.Contains(string(b), `"ts":""`) {
		t.Errorf("zero time: %s, %v; want empty ts", b, err)
	}
}

// TestTermUILineLimit: the line editor takes at most one message's worth of
// bytes and says so when typing or a paste goes past it, instead of cutting
// the line without a word (x/term alone stops at 4096 runes, which in
// two-byte characters is twice what the server takes).
func TestTermUILineLimit(t *testing.T) {
	h := newTUIHarness(t, monoOpts())
	h.ui.SetRoom("#general")
	rawFull := func() int {
		h.scr.mu.Lock()
		defer h.scr.mu.Unlock()
		return strings.Count(string(h.scr.raw), "the line is full")
	}

	res := h.readLineAsync()
	// 3000 two-byte characters: 6000 bytes, under x/term's 4096 runes.
	h.typeKeys(strings.Repeat("é", 3000))
	h.waitRaw("the line is full (4096 bytes")
	h.typeKeys("\r")
	r := <-res
	if r.err != nil || r.line != strings.Repeat("é", 2048) {
		t.Fatalf("ReadLine = %d bytes, %v; want the first 4096 bytes (2048 é)", len(r.line), r.err)
	}
	if n := rawFull(); n != 1 {
		t.Errorf("the user was told %d times, want once per line", n)
	}

	// A bracketed paste (markers the editor would obey by inserting past
	// any limit) is held to the limit too, and a smaller server limit holds.
	h.ui.SetMaxLine(100)
	res = h.readLineAsync()
	h.typeKeys("\x1b[200~" + strings.Repeat("p", 300) + "\x1b[201~")
	h.waitFor("the second notice", func(*vtScreen) bool { return strings.Count(string(h.scr.raw), "the line is full") == 2 })
	h.typeKeys("\r")
	r = <-res
	if r.err != nil || r.line != strings.Repeat("p", 100) {
		t.Fatalf("ReadLine after a paste = %q (%d bytes), %v; want 100 p", r.line, len(r.line), r.err)
	}

	// Under the limit nothing is said, and Tab cannot push a line over it.
	h.ui.SetNicks([]string{"bartholomew"})
	res = h.readLineAsync()
	h.typeKeys(strings.Repeat("q", 95) + " bart\t\r")
	r = <-res
	if r.err != nil || r.line != strings.Repeat("q", 95)+" bart" {
		t.Fatalf("ReadLine = %q, %v; want the completion refused", r.line, r.err)
	}
	res = h.readLineAsync()
	h.typeKeys("short\r")
	h.expectLine(res, "short")
	if n := rawFull(); n != 3 {
		t.Errorf("%d notices in all, want 3 (one per full line)", n)
	}
}

// resize models a terminal that rewraps on resize, as tmux does: the line
// editor ends its rows itself, so every row is a line of its own, and a
// row longer than the new width becomes as many rows as it needs. The
// cursor keeps its place in the text of its row.
func (s *vtScreen) resize(width int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rows [][]rune
	cy, cx := 0, 0
	for y, row := range s.rows {
		n := max(1, (len(row)+width-1)/width)
		if y == s.y {
			// Past the end of a row that fills its last line, the
			// cursor waits there to wrap (x == width).
			k := min(s.x/width, n-1)
			cy, cx = len(rows)+k, s.x-k*width
		}
		for i := range n {
			rows = append(rows, row[min(i*width, len(row)):min((i+1)*width, len(row))])
		}
	}
	s.rows, s.width, s.y, s.x = rows, width, cy, cx
}

// joined is the text of the rows from row from on, each row whole (a row
// the input fills may end in a space), as one string: the input when it
// wraps.
func (s *vtScreen) joined(from int) string {
	var b strings.Builder
	for _, r := range s.rows[min(from, len(s.rows)):] {
		b.WriteString(string(r))
	}
	return b.String()
}

// TestTermUIResizeLeavesOneInput: after the window narrows or widens under
// a wrapped input, the screen holds the messages above as they were and
// the input once, below them, however many rows it took at the old width.
// Among the inputs are ones that end a row exactly at the new width, where
// the cursor stays at the end of that row instead of starting a new one.
func TestTermUIResizeLeavesOneInput(t *testing.T) {
	words := ""
	for i := 0; len(words) < 150; i++ {
		words += "word" + string(rune('a'+i%26)) + " "
	}
	const prompt = "[#general] > "
	for _, tc := range []struct {
		widths []int
		n      int // input length; with the prompt, 97 is 60+37 and 60 is 3*20
	}{
		{[]int{60, 37}, 149}, {[]int{60, 37}, 84}, {[]int{40, 20}, 47}, {[]int{80, 60}, 149}, {[]int{60, 120}, 149},
		{[]int{80, 37, 100}, 149}, {[]int{40, 25, 19}, 149}, {[]int{37, 60}, 149}, {[]int{80, 60, 37}, 84},
		{[]int{80, 60, 120, 80, 100, 37}, 149},
	} {
		input := words[:tc.n]
		t.Run(fmt.Sprint(tc.widths, tc.n), func(t *testing.T) {
			widths := tc.widths
			h := newTUIHarness(t, monoOpts())
			h.scr.mu.Lock()
			h.scr.width = widths[0]
			h.scr.mu.Unlock()
			h.ui.SetSize(widths[0], 24)
			h.ui.SetRoom("#general")
			for i := 1; i <= 3; i++ {
				h.ui.Show(Event{Kind: "system", Text: fmt.Sprint("message ", i)})
			}
			res := h.readLineAsync()
			h.typeKeys(input)
			h.waitFor("the wrapped input", func(s *vtScreen) bool {
				return strings.HasSuffix(s.joined(0), prompt+input)
			})
			for _, w := range widths[1:] {
				h.resize(w)
				h.ui.SetSize(w, 24)
				h.waitFor(fmt.Sprintf("the input redrawn once at width %d", w), func(s *vtScreen) bool {
					want := []string{"-- message 1", "-- message 2", "-- message 3"}
					ls := s.lines()
					return len(ls) > 3 && slices.Equal(ls[:3], want) &&
						s.joined(3) == prompt+input && strings.HasPrefix(ls[3], prompt)
				})
			}
			h.typeKeys("\r")
			h.expectLine(res, input)
		})
	}
}
