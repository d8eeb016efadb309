package tui

// The interactive client UI is a line editor (golang.org/x/term's Terminal)
// with chat lines printed above the prompt. Its one rule: every byte for the
// terminal goes through UI.outMu and then Terminal.Write, so a line shown
// from the network goroutine clears the prompt, prints, and redraws the prompt
// and the partial input, and never lands in the middle of what is typed.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"securechat/chat"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/term"
)

// Keys as they arrive from a terminal in raw mode.
const (
	keyInterrupt = 0x03 // Ctrl-C
	keyEOF       = 0x04 // Ctrl-D
	// keyCancel is what Ctrl-C is turned into before the line editor sees
	// it (x/term ends ReadLine on Ctrl-C even with text on the line, which
	// would throw the text away and quit). BEL is never typed on purpose,
	// so the input filter drops real ones and the completion callback can
	// take every BEL for a Ctrl-C.
	keyCancel = 0x07
	keyTab    = '\t'
)

// defaultCommands are completed after a "/" at the start of the line until
// the client sets its own list with SetCommands: every command of the chat
// protocol and of the client, with their aliases, from chat's one table.
func defaultCommands() []string {
	var out []string
	for _, c := range append(chat.Commands(), chat.ClientCommands()...) {
		out = append(out, "/"+c.Name)
		for _, a := range c.Aliases {
			out = append(out, "/"+a)
		}
	}
	slices.Sort(out)
	return out
}

// Options tunes a UI. The zero value gives colours (unless
// NO_COLOR is set), timestamps and a bell on mentions.
type Options struct {
	Self         string // own nick: skipped by completion, never a mention
	NoColor      bool   // monochrome; a non-empty NO_COLOR environment variable also forces it
	NoTimestamps bool   // no "HH:MM" before each line
	NoBell       bool   // no BEL on mentions
}

// UI is the interactive chat UI over a terminal in raw mode (or any
// io.ReadWriter, which is how it is tested).
//
// Show, EndOfHistory, SetRoom, SetNicks, SetSelf, SetCommands and SetSize
// are safe from any goroutine at any time. ReadLine must be called from one
// goroutine at a time.
type UI struct {
	t   *term.Terminal
	out *switchWriter // all terminal output

	// outMu serialises all output and guards the fields below it. While a
	// submitted line is being processed (from the moment its Enter key is
	// handed to the line editor until the echoed line has been erased) the
	// input goroutine holds outMu, so no shown line can slip between the
	// echo and its erasure.
	outMu   sync.Mutex
	fmt     tuiFormatter
	bell    bool
	prompt  string
	room    string // shown in the prompt
	status  string // shown in the prompt after the room
	width   int
	sizeFn  func() (width, height int, err error)
	pending map[string]*historyCount // per room: history lines shown, marker not yet printed
	seen    map[string]bool          // rooms (and "" for DMs) with a live line shown in this run

	// compMu guards the completion lists and the line limit, read by the
	// key callback.
	compMu   sync.Mutex
	nicks    []string
	commands []string
	self     string
	maxLine  int // bytes; keys that would make the line longer are refused

	// Owned by the ReadLine goroutine (the input filter and the completion
	// callback run on it).
	in           io.Reader
	inBuf        [256]byte
	inPending    []byte
	inErr        error
	lastWasCR    bool
	holdingEnter bool        // outMu is held across a submitted line
	quitPending  bool        // Ctrl-C on an empty line: end ReadLine
	ended        bool        // ReadLine returned io.EOF: it always will
	limitShown   bool        // the user has been told that the line is full
	quitHinted   bool        // the user has been told that Ctrl-C on an empty line quits
	comp         *completion // the last Tab completion, for the next Tab to cycle
}

// maxEditorLine is the most the line editor can hold: x/term ignores keys
// past 4096 runes without a word, so the UI's own limit, which says so,
// must never be above it.
const maxEditorLine = 4096

type historyCount struct {
	n     int
	first time.Time
}

// New builds the UI over rw, which must be a terminal already in raw
// mode, or pipes in tests. The prompt is "> " until SetRoom is called.
func New(rw io.ReadWriter, opts Options) *UI {
	ui := &UI{
		fmt: tuiFormatter{
			color:      !opts.NoColor && os.Getenv("NO_COLOR") == "",
			timestamps: !opts.NoTimestamps,
			self:       opts.Self,
			now:        time.Now,
		},
		bell:     !opts.NoBell,
		prompt:   "> ",
		width:    80,
		pending:  make(map[string]*historyCount),
		seen:     make(map[string]bool),
		commands: defaultCommands(),
		self:     opts.Self,
		maxLine:  maxEditorLine,
		in:       rw,
	}
	ui.out = &switchWriter{w: rw}
	ui.t = term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{inputFilter{ui}, ui.out}, ui.prompt)
	ui.t.History = &inputHistory{max: 500}
	ui.t.AutoCompleteCallback = ui.onKey
	return ui
}

// SetRoom shows room in the prompt, as "[#general] > ". An empty room
// gives "> ".
func (ui *UI) SetRoom(room string) {
	ui.outMu.Lock()
	defer ui.outMu.Unlock()
	ui.room = Sanitize(room)
	ui.setPromptLocked()
}

// SetStatus shows a short status in the prompt, as
// "[#general] (reconnecting) > ", so that the state of the connection is
// in sight where the user types. "" removes it.
func (ui *UI) SetStatus(status string) {
	ui.outMu.Lock()
	defer ui.outMu.Unlock()
	ui.status = Sanitize(status)
	ui.setPromptLocked()
}

func (ui *UI) setPromptLocked() {
	p := ""
	if ui.room != "" {
		p = "[" + ui.room + "] "
	}
	if ui.status != "" {
		p += "(" + ui.status + ") "
	}
	p += "> "
	ui.prompt = p
	ui.t.SetPrompt(p)
	// With a prompt on screen, an empty write repaints it; without one
	// it writes nothing.
	ui.t.Write(nil)
}

// SetSelf changes the own nick (after /nick).
func (ui *UI) SetSelf(nick string) {
	ui.outMu.Lock()
	ui.fmt.self = nick
	ui.outMu.Unlock()
	ui.compMu.Lock()
	ui.self = nick
	ui.compMu.Unlock()
}

// SetNicks replaces the list of nicks offered by Tab completion.
func (ui *UI) SetNicks(nicks []string) {
	s := slices.Clone(nicks)
	slices.SortFunc(s, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	ui.compMu.Lock()
	ui.nicks = slices.Compact(s)
	ui.compMu.Unlock()
}

// SetCommands replaces the commands completed after "/" at the start of the
// line. Each entry includes its slash, as in "/join".
func (ui *UI) SetCommands(cmds []string) {
	s := slices.Clone(cmds)
	slices.Sort(s)
	ui.compMu.Lock()
	ui.commands = slices.Compact(s)
	ui.compMu.Unlock()
}

// SetMaxLine sets the longest line, in bytes, that the editor accepts
// (at most 4096). Keys that would make the line longer are refused, and
// the user is told once per line, so a long paste is never cut silently.
func (ui *UI) SetMaxLine(n int) {
	n = max(1, min(n, maxEditorLine))
	ui.compMu.Lock()
	ui.maxLine = n
	ui.compMu.Unlock()
}

// SetSize tells the line editor the terminal size, needed to redraw input
// that wraps. sizeFn, when set with setSizeFunc, makes this automatic.
func (ui *UI) SetSize(width, height int) {
	ui.outMu.Lock()
	defer ui.outMu.Unlock()
	ui.setSizeLocked(width, height)
}

// setSizeLocked tells the line editor the new size and redraws the input
// for it. The editor's own redraw guesses how the terminal rearranged the
// rows of a wrapped input (it assumes each row became two when the window
// narrows), and a wrong guess overwrites the messages above the prompt or
// leaves stale copies of the input. Here the redraw is done from what the
// terminal really did: the editor breaks a long input into rows itself
// (hard line ends), and terminals that rewrap on resize (tmux, screen,
// VTE, kitty, iTerm2, Windows Terminal) split each of those rows again
// when the window narrows and never join them when it widens. So the
// cursor's row within the input is computed from its position at the old
// width, the cursor goes to the input's first row, everything below is
// erased, and the editor's repaint for the new width is drawn there.
func (ui *UI) setSizeLocked(width, height int) {
	if width <= 0 || width == ui.width {
		return
	}
	old := ui.width
	ui.width = width
	ui.out.capture(true)
	// At one column wider the editor repaints without changing its idea
	// of the rows; its first cursor move tells where the cursor is.
	ui.t.SetSize(old+1, height)
	probe := ui.out.take()
	ui.t.SetSize(width, height)
	repaint := ui.out.take()
	ui.out.capture(false)
	row, col := leadingMove(probe)
	paint := stripLeadingEscapes(repaint)
	if len(paint) == 0 {
		return // no prompt on screen
	}
	if width < old {
		// Each full row became ceil(old/width) rows, and the cursor's row
		// split before it. A cursor just past the last character, when
		// that ends a row at the new width exactly, stays at the end of
		// that row (pending wrap): it starts no row of its own.
		atEnd := row*old+col == visibleLen(stripLeadingEscapes(probe))
		split := col / width
		if atEnd && col > 0 && col%width == 0 {
			split--
		}
		row = row*((old+width-1)/width) + split
	}
	var b strings.Builder
	b.WriteString("\r")
	if row > 0 {
		b.WriteString("\x1b[" + strconv.Itoa(row) + "A")
	}
	b.WriteString("\x1b[J")
	b.Write(paint)
	ui.out.Write([]byte(b.String()))
}

// leadingMove reads the cursor moves at the start of an editor repaint,
// before its first erase: how far up and left it went to reach the start of
// the input.
func leadingMove(p []byte) (up, left int) {
	for len(p) >= 3 && p[0] == 0x1b && p[1] == '[' {
		i := 2
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
		if i == len(p) {
			break
		}
		n := 1
		if i > 2 {
			n, _ = strconv.Atoi(string(p[2:i]))
		}
		switch p[i] {
		case 'A':
			up += n
		case 'D':
			left += n
		case 'K':
			return up, left
		}
		p = p[i+1:]
	}
	return up, left
}

// visibleLen counts the characters an editor repaint shows: its runes
// without escape sequences and line ends.
func visibleLen(p []byte) int {
	n := 0
	for len(p) > 0 {
		switch {
		case len(p) >= 2 && p[0] == 0x1b && p[1] == '[':
			i := 2
			for i < len(p) && (p[i] < 0x40 || p[i] > 0x7e) {
				i++
			}
			p = p[min(i+1, len(p)):]
			continue
		case p[0] == '\r' || p[0] == '\n':
		default:
			n++
		}
		_, size := utf8.DecodeRune(p)
		p = p[size:]
	}
	return n
}

// stripLeadingEscapes drops the cursor moves and erases at the start of an
// editor repaint, keeping the repaint itself (the prompt onwards).
func stripLeadingEscapes(p []byte) []byte {
	for len(p) >= 3 && p[0] == 0x1b && p[1] == '[' {
		i := 2
		for i < len(p) && (p[i] >= '0' && p[i] <= '9' || p[i] == ';') {
			i++
		}
		if i == len(p) {
			return nil
		}
		p = p[i+1:]
	}
	for len(p) > 0 && (p[0] == '\r' || p[0] == '\n') && len(p) > 1 && p[1] == 0x1b {
		p = p[1:]
	}
	return p
}

// switchWriter is the terminal output, which the resize redraw can divert
// into a buffer for a moment.
type switchWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf *bytes.Buffer // non-nil: writes go here
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buf != nil {
		return s.buf.Write(p)
	}
	return s.w.Write(p)
}

func (s *switchWriter) capture(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.buf = new(bytes.Buffer)
	} else {
		s.buf = nil
	}
}

// take returns what was captured so far and starts a new capture.
func (s *switchWriter) take() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buf.Bytes()
	s.buf = new(bytes.Buffer)
	return b
}

// setSizeFunc makes the UI poll the terminal size before each shown line
// and each prompt, which follows window resizes without a SIGWINCH handler
// (there is none on Windows).
func (ui *UI) setSizeFunc(fn func() (width, height int, err error)) {
	ui.outMu.Lock()
	defer ui.outMu.Unlock()
	ui.sizeFn = fn
	ui.pollSizeLocked()
}

func (ui *UI) pollSizeLocked() {
	if ui.sizeFn == nil {
		return
	}
	if w, h, err := ui.sizeFn(); err == nil {
		ui.setSizeLocked(w, h)
	}
}

// Show prints one event above the prompt. It may be called from any
// goroutine while the user types.
//
// Replayed history (History=true) is counted per room; the "— N new
// messages —" marker is printed when that room's replay ends, which is
// either an explicit EndOfHistory call or, failing that, the first live
// event for the room. Mentions of the own nick are highlighted in every
// line, and ring the bell only in live lines.
func (ui *UI) Show(ev Event) {
	ui.outMu.Lock()
	defer ui.outMu.Unlock()
	ui.pollSizeLocked()

	var out strings.Builder
	if key, ok := historyKey(ev); ok {
		if ev.History {
			if isMessageKind(ev.Kind) {
				hc := ui.pending[key]
				if hc == nil {
					hc = &historyCount{first: ev.Time}
					ui.pending[key] = hc
				}
				hc.n++
			}
		} else {
			if hc := ui.pending[key]; hc != nil {
				delete(ui.pending, key)
				out.WriteString(ui.markerLine(key, hc.n, hc.first))
			}
			ui.seen[key] = true
		}
	}

	line, mention := ui.fmt.format(ev)
	out.WriteString(line)
	if mention && !ev.History && ui.bell {
		// Before the newline, so the bell goes out in the same write as
		// the line that caused it.
		out.WriteByte('\a')
	}
	out.WriteByte('\n')
	io.WriteString(ui.t, out.String())
}

// EndOfHistory ends the history replay of room now, printing the new-messages
// marker if any history was shown for it. n overrides the count of history
// messages seen by Show when it is positive; with n <= 0 the counted number
// is used, and nothing is printed if none were seen. Use "" as room for DM
// history.
func (ui *UI) EndOfHistory(room string, n int) {
	ui.outMu.Lock()
	defer ui.outMu.Unlock()
	hc := ui.pending[room]
	delete(ui.pending, room)
	var first time.Time
	count := 0
	if hc != nil {
		count, first = hc.n, hc.first
	}
	if n > 0 {
		count = n
	}
	if count == 0 {
		return
	}
	io.WriteString(ui.t, ui.markerLine(room, count, first))
}

// historyKey names the stream an event belongs to for the new-messages
// marker: its room, or "" for DMs. Lines outside any room and DM (system
// messages, errors) belong to none, so they neither count nor end a replay.
func historyKey(ev Event) (string, bool) {
	switch {
	case ev.Kind == "dm":
		return "", true
	case ev.Room != "" && ev.Kind != "system" && ev.Kind != "error":
		return ev.Room, true
	}
	return "", false
}

func (ui *UI) markerLine(room string, n int, since time.Time) string {
	s := newMessagesMarker(room, n, since, ui.seen[room])
	if ui.fmt.color {
		s = sgrDim + s + sgrReset
	}
	return s + "\n"
}

// ReadLine reads one line of input with editing, history (Up/Down) and Tab
// completion. After Enter the echoed input is erased, so a sent message
// appears once, when the server echoes it back; the client prints what it
// wants for commands.
//
// Ctrl-C with text on the line clears the line; Ctrl-C or Ctrl-D on an empty
// line returns io.EOF, as does the end of the input stream. After io.EOF every
// later call returns io.EOF at once: the user asked to quit.
func (ui *UI) ReadLine() (string, error) {
	ui.outMu.Lock()
	ui.pollSizeLocked()
	ui.outMu.Unlock()

	if ui.ended {
		return "", io.EOF
	}
	line, err := ui.t.ReadLine()
	ui.limitShown = false
	if errors.Is(err, term.ErrPasteIndicator) {
		err = nil
	}
	if ui.holdingEnter {
		if err == nil {
			ui.eraseSubmittedLocked(line)
		}
		ui.holdingEnter = false
		ui.outMu.Unlock()
	}
	if ui.quitPending || errors.Is(err, io.EOF) {
		ui.quitPending = false
		ui.ended = true
		return "", io.EOF
	}
	return line, err
}

// eraseSubmittedLocked removes the prompt and the submitted line, which the
// line editor leaves on screen, with the cursor just below them. x/term
// wraps a row at exactly the terminal width, so prompt+line covers
// len/width+1 rows.
func (ui *UI) eraseSubmittedLocked(line string) {
	n := utf8.RuneCountInString(ui.prompt) + utf8.RuneCountInString(line)
	rows := n/ui.width + 1
	ui.t.Write([]byte(strings.Repeat("\x1b[1A\x1b[2K", rows)))
}

// onKey is the line editor's AutoCompleteCallback: Tab completion, Ctrl-C
// (arriving as keyCancel) and the line limit. The editor calls it for
// every key it has no binding of its own for, which covers every printable
// key. It runs on the ReadLine goroutine.
func (ui *UI) onKey(line string, pos int, key rune) (string, int, bool) {
	ui.compMu.Lock()
	limit := ui.maxLine
	ui.compMu.Unlock()
	switch key {
	case keyTab:
		newLine, newPos, ok := ui.complete(line, pos)
		if ok && len(newLine) > limit {
			ui.lineFull(limit)
			return line, pos, true
		}
		return newLine, newPos, ok
	case keyCancel:
		if line == "" {
			ui.quitPending = true
			return "", 0, false
		}
		if !ui.quitHinted {
			// Once: a user who meant to quit must not think the client
			// hung, and one who knows does not need telling twice.
			ui.quitHinted = true
			ui.printLocal("system", "line cleared: Ctrl-C again quits")
		}
		return "", 0, true
	}
	if key >= 0x20 && !(key >= 0xd800 && key <= 0xdbff) { // what the editor would insert
		if len(line)+utf8.RuneLen(key) > limit {
			// Returning the line unchanged as "handled" keeps the key out.
			ui.lineFull(limit)
			return line, pos, true
		}
		ui.limitShown = false
	}
	return "", 0, false
}

// lineFull tells the user, once until a key is accepted again, that the
// line is full and what was typed or pasted past the limit was left out.
func (ui *UI) lineFull(limit int) {
	if ui.limitShown {
		return
	}
	ui.limitShown = true
	ui.printLocal("error", fmt.Sprintf("the line is full (%d bytes, the most one message may have): the rest was not added", limit))
}

// printLocal prints a line of the UI's own above the prompt, from the
// ReadLine goroutine (a key callback), which may already hold outMu.
func (ui *UI) printLocal(kind, text string) {
	if !ui.holdingEnter {
		ui.outMu.Lock()
		defer ui.outMu.Unlock()
	}
	line, _ := ui.fmt.format(Event{Time: time.Now(), Kind: kind, Text: text})
	io.WriteString(ui.t, line+"\n")
}

// complete completes the word before pos: a command after "/" at the start
// of the line, else a nick ("nick: " at the start of the line, "nick "
// elsewhere, as irssi and ssh-chat do). With several candidates the first
// Tab extends the word to their longest common prefix, if that adds
// anything, else puts the first candidate in place, and lists them all
// once; each Tab right after puts the next candidate in place, round and
// round.
func (ui *UI) complete(line string, pos int) (string, int, bool) {
	if c := ui.comp; c != nil && line == c.line && pos == c.pos {
		c.i = (c.i + 1) % len(c.candidates)
		return ui.putCandidate(c)
	}
	ui.comp = nil
	if pos < 0 || pos > len(line) {
		return "", 0, false
	}
	start := strings.LastIndexByte(line[:pos], ' ') + 1
	word := line[start:pos]
	if word == "" {
		return "", 0, false
	}

	ui.compMu.Lock()
	var candidates []string
	suffix := " "
	if start == 0 && strings.HasPrefix(word, "/") {
		candidates = matchPrefix(ui.commands, word, "")
	} else {
		candidates = matchPrefix(ui.nicks, word, ui.self)
		if start == 0 {
			suffix = ": "
		}
	}
	ui.compMu.Unlock()

	c := &completion{head: line[:start], tail: line[pos:], candidates: candidates, suffix: suffix}
	switch len(candidates) {
	case 0:
		return "", 0, false
	case 1:
		return ui.putCandidate(c)
	}
	ui.printLocal("system", strings.Join(candidates, " "))
	ui.comp = c
	if prefix := commonPrefixFold(candidates); utf8.RuneCountInString(prefix) > utf8.RuneCountInString(word) {
		c.i = -1
		c.line, c.pos = c.head+prefix+c.tail, len(c.head)+len(prefix)
		return c.line, c.pos, true
	}
	return ui.putCandidate(c)
}

// completion is a Tab completion with several candidates, kept so that
// the next Tab can cycle through them. It runs on the ReadLine goroutine.
type completion struct {
	head, tail string // the line before and after the completed word
	candidates []string
	suffix     string
	i          int    // the candidate in place; -1 for their common prefix
	line       string // the line as the completion left it
	pos        int
}

// putCandidate puts candidate c.i (at least 0) in place of the word.
func (ui *UI) putCandidate(c *completion) (string, int, bool) {
	c.i = max(c.i, 0)
	insert := c.candidates[c.i] + c.suffix
	if strings.HasPrefix(c.tail, " ") {
		insert = strings.TrimSuffix(insert, " ")
	}
	c.line, c.pos = c.head+insert+c.tail, len(c.head)+len(insert)
	return c.line, c.pos, true
}

// matchPrefix returns the entries of list that start with prefix, ignoring
// case, except skip.
func matchPrefix(list []string, prefix, skip string) []string {
	var out []string
	for _, s := range list {
		if skip != "" && strings.EqualFold(s, skip) {
			continue
		}
		if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
			out = append(out, s)
		}
	}
	return out
}

// commonPrefixFold returns the longest prefix shared by all of ss, ignoring
// case, spelled as in ss[0].
func commonPrefixFold(ss []string) string {
	first := ss[0]
	end := len(first)
	for _, s := range ss[1:] {
		i := 0
		for i < end && i < len(s) {
			r1, n1 := utf8.DecodeRuneInString(first[i:])
			r2, n2 := utf8.DecodeRuneInString(s[i:])
			if n1 != n2 || unicode.ToLower(r1) != unicode.ToLower(r2) {
				break
			}
			i += n1
		}
		end = i
	}
	return first[:end]
}

// inputFilter sits between the terminal and the line editor. It turns
// Ctrl-C into keyCancel, and hands over input in chunks that end at the
// first Enter or Ctrl-C, so that the key is processed before anything
// typed after it. Before handing over an Enter it takes outMu (see UI).
type inputFilter struct{ ui *UI }

func (f inputFilter) Read(p []byte) (int, error) {
	ui := f.ui
	if ui.holdingEnter {
		// The Enter did not end the line (it was swallowed by an
		// unfinished escape sequence): let output flow again.
		ui.holdingEnter = false
		ui.outMu.Unlock()
	}
	if ui.quitPending {
		// Ctrl-D on the now empty line makes the editor return io.EOF.
		p[0] = keyEOF
		return 1, nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	for len(ui.inPending) == 0 {
		if ui.inErr != nil {
			err := ui.inErr
			ui.inErr = nil
			return 0, err
		}
		n, err := ui.in.Read(ui.inBuf[:])
		ui.inPending, ui.inErr = ui.inBuf[:n], err
		if n == 0 && err == nil {
			return 0, nil
		}
	}
	n := 0
	for len(ui.inPending) > 0 && n < len(p) {
		c := ui.inPending[0]
		ui.inPending = ui.inPending[1:]
		wasCR := ui.lastWasCR
		ui.lastWasCR = c == '\r'
		if c == 0x1b {
			from, to, ok := translateKey(ui.inPending)
			switch {
			case ok && len(p)-n >= len(to):
				ui.inPending = ui.inPending[len(from):]
				n += copy(p[n:], to)
				continue
			case ok && n > 0:
				// No room: hand it over on the next call.
				ui.inPending = append([]byte{c}, ui.inPending...)
				return n, nil
			}
			// Unknown, or no room at all: pass it on untranslated.
		}
		switch {
		case c == keyCancel:
			continue
		case c == '\n' && wasCR:
			continue // the LF of a CRLF: its CR was the Enter
		case c == keyInterrupt:
			p[n] = keyCancel
			return n + 1, nil
		case c == '\r' || c == '\n':
			p[n] = c
			ui.outMu.Lock()
			ui.holdingEnter = true
			return n + 1, nil
		}
		p[n] = c
		n++
	}
	if n == 0 && ui.inErr != nil {
		err := ui.inErr
		ui.inErr = nil
		return 0, err
	}
	return n, nil
}

// keyAliases are key sequences the line editor does not know, mapped to
// ones it does: Home and End as sent by tmux, screen, the Linux console and
// terminals in application mode, and Ctrl-Left/Right (word moves, which the
// editor knows as Alt-Left/Right). Each is keyed by what follows the ESC.
var keyAliases = []struct{ from, to string }{
	{"[1~", "\x01"}, {"[7~", "\x01"}, {"OH", "\x01"},
	{"[4~", "\x05"}, {"[8~", "\x05"}, {"OF", "\x05"},
	{"[1;5D", "\x1b[1;3D"}, {"[1;5C", "\x1b[1;3C"},
	// The bracketed-paste markers, in case a terminal sends them although
	// the client never asks for them: in paste mode the editor inserts
	// keys without asking onKey, past any limit. Without the markers a
	// paste is typing, and the line limit holds.
	{"[200~", ""}, {"[201~", ""},
}

// translateKey matches rest, the input after an ESC, against keyAliases.
func translateKey(rest []byte) (from []byte, to string, ok bool) {
	for _, a := range keyAliases {
		if len(rest) >= len(a.from) && string(rest[:len(a.from)]) == a.from {
			return rest[:len(a.from)], a.to, true
		}
	}
	return nil, "", false
}

// inputHistory is the Up/Down history: bounded, without blank lines and
// without a line repeating the one before it.
type inputHistory struct {
	max     int
	entries []string // oldest first
}

func (h *inputHistory) Add(entry string) {
	if strings.TrimSpace(entry) == "" {
		return
	}
	if n := len(h.entries); n > 0 && h.entries[n-1] == entry {
		return
	}
	h.entries = append(h.entries, entry)
	if len(h.entries) > h.max {
		h.entries = slices.Delete(h.entries, 0, len(h.entries)-h.max)
	}
}

func (h *inputHistory) Len() int { return len(h.entries) }

// At returns the idx-th most recent entry (0 is the newest).
func (h *inputHistory) At(idx int) string { return h.entries[len(h.entries)-1-idx] }

// NewTTY puts the terminal on in into raw mode and builds the UI over in
// and out, following the terminal's size. restore erases the prompt and
// restores the terminal mode; later calls do nothing.
func NewTTY(in, out *os.File, opts Options) (ui *UI, restore func() error, err error) {
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		return nil, nil, errors.New("interactive mode needs a terminal on standard input")
	}
	state, err := term.MakeRaw(fd)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot set the terminal to raw mode: %w", err)
	}
	ui = New(struct {
		io.Reader
		io.Writer
	}{in, out}, opts)
	sizeFd := int(out.Fd())
	if !term.IsTerminal(sizeFd) {
		sizeFd = fd
	}
	ui.setSizeFunc(func() (int, int, error) { return term.GetSize(sizeFd) })
	stopWinch := onWindowChange(func() {
		if w, h, err := term.GetSize(sizeFd); err == nil {
			ui.SetSize(w, h)
		}
	})
	var once sync.Once
	var restoreErr error
	restore = func() error {
		once.Do(func() {
			stopWinch()
			// Straight to the terminal: through the line editor the
			// prompt would be drawn again after the erase.
			ui.outMu.Lock()
			io.WriteString(out, "\r\x1b[K")
			ui.outMu.Unlock()
			restoreErr = term.Restore(fd, state)
		})
		return restoreErr
	}
	return ui, restore, nil
}
