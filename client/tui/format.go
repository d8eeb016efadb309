package tui

// This file turns chat events into text: one sanitised line per event, for
// the interactive terminal (colours, timestamps, highlights) and for script
// mode (plain lines or JSON objects). Nothing here touches a terminal, so
// every format is a pure function of the event and a few settings.

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
	"securechat/chat"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Event is one line the user sees. The client translates wire
// messages into these, so the UI does not depend on the chat protocol.
type Event struct {
	ID      uint64
	Time    time.Time
	Kind    string // "msg", "me", "dm", "notice", "join", "part", "quit", "topic", "error", "system"
	Room    string // "#general"; empty for DMs and system lines
	From    string
	To      string // DM recipient
	Text    string // message body; for part and quit the reason, for topic the topic
	History bool   // replayed history
	Line    int    // script mode: the input line an error or reply answers; 0 for none
	Code    string // errors: the error code (PROTOCOL.md §13.13, or a local one of §17)
	// Sig is the mark of a message (PROTOCOL.md §13.16.7): "verified",
	// "unsigned" or "failed", "" for events that are not messages or
	// were not checked; SigReason says why a message failed.
	Sig       string
	SigReason string
	// Signed is the sender's clock when signing (the event's cts), set for
	// a message whose signature verified; zero otherwise. Replayed history
	// shows it where it differs from Time, the server's time.
	Signed time.Time
}

// Marks of Event.Sig.
const (
	SigVerified = "verified"
	SigUnsigned = "unsigned"
	SigFailed   = "failed"
	// SigReasonPending is the reason of a message whose key the user is
	// being asked about: not verified, but not yet judged either.
	SigReasonPending = "key_pending"
)

// Sanitize makes s safe to print on a terminal. It is defence in depth: the
// server strips control characters too (chat.SanitizeText, the same rules),
// but a line of chat must never be able to move the cursor, retitle the
// window, ring the bell or reorder text, whatever server sent it. On top of
// the server's rules the client also drops the bidirectional marks (ALM, LRM,
// RLM), which have no business in a nick or a one-line message.
func Sanitize(s string) string {
	s = chat.SanitizeText(s)
	if !strings.ContainsAny(s, "\u061c\u200e\u200f") {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == 0x061c || r == 0x200e || r == 0x200f {
			return -1
		}
		return r
	}, s)
}

// sanitizeEvent returns ev with every displayed field sanitised.
func sanitizeEvent(ev Event) Event {
	ev.Kind = Sanitize(ev.Kind)
	ev.Room = Sanitize(ev.Room)
	ev.From = Sanitize(ev.From)
	ev.To = Sanitize(ev.To)
	ev.Text = Sanitize(ev.Text)
	ev.Code = Sanitize(ev.Code)
	return ev
}

// Script mode.

// FormatPlain renders ev as one line of plain text, without a trailing
// newline and without escape sequences, for script mode. Every line starts
// with a bracketed tag: the room, "[dm]", "[notice]" (a notice outside any
// room), "[error]" or "[system]":
//
//	[#general] alice: text
//	[#general] * alice waves
//	[dm] alice -> bob: text
//	[#general] -alice- text          (notice)
//	[#general] -- bob joined
//	[#general] -- bob left (reason)
//	[#general] -- bob quit (reason)
//	[#general] -- alice set the topic: text
//	[system] text
//	[error] text
//	[error] line 7: text             (an error answering input line 7)
//
// Replayed history carries " (history)" right after the tag, so
// `grep -v '^\[[^]]*\] (history) '` keeps only live traffic:
//
//	[#general] (history) alice: text
func FormatPlain(ev Event) string {
	ev = sanitizeEvent(ev)
	var b strings.Builder
	b.WriteByte('[')
	b.WriteString(plainTag(ev))
	b.WriteString("] ")
	if ev.History {
		b.WriteString("(history) ")
	}
	switch ev.Kind {
	case "msg":
		b.WriteString(ev.From + ": " + ev.Text)
	case "me":
		b.WriteString("* " + ev.From + " " + ev.Text)
	case "dm":
		b.WriteString(ev.From + " -> " + ev.To + ": " + ev.Text)
	case "notice":
		if ev.From != "" {
			b.WriteString("-" + ev.From + "- ")
		}
		b.WriteString(ev.Text)
	case "join", "part", "quit", "topic":
		b.WriteString("-- " + presenceText(ev))
	case "error":
		if ev.Line > 0 {
			b.WriteString("line " + strconv.Itoa(ev.Line) + ": ")
		}
		b.WriteString(ev.Text)
	default:
		if ev.From != "" {
			b.WriteString(ev.From + ": ")
		}
		b.WriteString(ev.Text)
	}
	b.WriteString(plainSigMark(ev))
	return b.String()
}

// plainSigMark is what ends the plain line of a checked message
// (PROTOCOL.md §13.16.7); unsigned messages end as they always did.
func plainSigMark(ev Event) string {
	switch ev.Sig {
	case SigVerified:
		return " [verified]"
	case SigFailed:
		return " [FAILED: " + ev.SigReason + "]"
	}
	return ""
}

// plainTag is the bracketed first field of a script-mode line.
func plainTag(ev Event) string {
	switch {
	case ev.Kind == "dm":
		return "dm"
	case ev.Kind == "error":
		return "error"
	case ev.Room != "":
		return ev.Room
	case ev.Kind == "notice":
		return "notice"
	}
	return "system"
}

// presenceText describes a join, part, quit or topic change without a
// prefix, shared by both output styles.
func presenceText(ev Event) string {
	reason := ""
	if ev.Text != "" {
		reason = " (" + ev.Text + ")"
	}
	switch ev.Kind {
	case "join":
		return ev.From + " joined"
	case "part":
		return ev.From + " left" + reason
	case "quit":
		return ev.From + " quit" + reason
	case "topic":
		if ev.From == "" {
			return "topic: " + ev.Text
		}
		return ev.From + " set the topic: " + ev.Text
	}
	return ev.Text
}

// jsonEvent fixes the field names and order of script-mode JSON, as
// PROTOCOL.md §17 specifies them. Every field is always present so that
// scripts can rely on the shape.
type jsonEvent struct {
	TS      string `json:"ts"` // RFC 3339 in UTC, "" when unknown
	ID      uint64 `json:"id"`
	Kind    string `json:"kind"`
	Room    string `json:"room"`
	From    string `json:"from"`
	To      string `json:"to"`
	Text    string `json:"text"`
	History bool   `json:"history"`
	Line    int    `json:"line"`
	Code    string `json:"code"`
	// Sig and SigReason: PROTOCOL.md §13.16.7.
	Sig       string `json:"sig"`
	SigReason string `json:"sig_reason"`
}

// FormatJSON renders ev as one JSON object without a trailing newline, for
// `connect --json`-style script mode (one object per line). Strings are
// sanitised like the terminal output, and <, > and & are left as they are
// because the output is not meant for HTML.
func FormatJSON(ev Event) ([]byte, error) {
	ev = sanitizeEvent(ev)
	je := jsonEvent{
		ID:      ev.ID,
		Kind:    ev.Kind,
		Room:    ev.Room,
		From:    ev.From,
		To:      ev.To,
		Text:    ev.Text,
		History: ev.History,
		Line:    ev.Line,
		Code:    ev.Code,

		Sig:       ev.Sig,
		SigReason: ev.SigReason,
	}
	if !ev.Time.IsZero() {
		je.TS = ev.Time.UTC().Format(time.RFC3339)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&je); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Interactive terminal.

// SGR sequences used by the terminal UI. Only these, built here, ever reach
// the terminal from the formatter; event text is sanitised first.
const (
	sgrReset     = "\x1b[0m"
	sgrHighlight = "\x1b[1;7m" // bold + reverse video: visible with or without colour
	sgrDim       = "\x1b[2m"
	sgrErr       = "\x1b[1;31m"
)

// nickPalette is the set of xterm 256-colour indices used for nicks. It is
// derived rather than hand-picked: the 6x6x6 colour cube (16-231) minus the
// greys, keeping only colours whose relative luminance (Rec. 709 weights on
// the xterm channel levels) lies in [55, 190] out of 255. That drops black,
// dark blue and dark red, which vanish on dark backgrounds, and the pale
// near-white tints that vanish on light ones.
var nickPalette = buildNickPalette()

func buildNickPalette() []int {
	levels := [6]float64{0, 95, 135, 175, 215, 255}
	var p []int
	for r := range 6 {
		for g := range 6 {
			for b := range 6 {
				if r == g && g == b {
					continue
				}
				lum := 0.2126*levels[r] + 0.7152*levels[g] + 0.0722*levels[b]
				if lum < 55 || lum > 190 {
					continue
				}
				p = append(p, 16+36*r+6*g+b)
			}
		}
	}
	return p
}

// nickColor maps a nick to its colour. The hash ignores case so a nick keeps
// its colour when its spelling only changes case.
func nickColor(nick string) int {
	h := fnv.New32a()
	h.Write([]byte(strings.ToLower(nick)))
	return nickPalette[h.Sum32()%uint32(len(nickPalette))]
}

// tuiFormatter renders events for the interactive terminal. The zero value
// renders without colour and without timestamps.
type tuiFormatter struct {
	color      bool   // nick and error colours
	timestamps bool   // "HH:MM " in local time before each line
	self       string // own nick: mentions of it are highlighted
	now        func() time.Time
}

// nick renders a nick, coloured when colour is on.
func (f *tuiFormatter) nick(n string) string {
	if !f.color || n == "" {
		return n
	}
	return "\x1b[38;5;" + strconv.Itoa(nickColor(n)) + "m" + n + "\x1b[39m"
}

func (f *tuiFormatter) stamp(ev Event) string {
	if !f.timestamps {
		return ""
	}
	t := ev.Time
	if t.IsZero() && f.now != nil {
		t = f.now()
	}
	s := t.Local().Format("15:04") + " "
	if f.color {
		return sgrDim + s + sgrReset
	}
	return s
}

// format renders one sanitised event as a terminal line without the
// trailing newline. mention reports whether the event addresses the user:
// it names the own nick (as a whole word) or is a DM to them. Own messages
// are never mentions. Highlighting uses bold and reverse video, which
// NO_COLOR does not forbid, so mentions stay visible in monochrome.
func (f *tuiFormatter) format(ev Event) (line string, mention bool) {
	ev = sanitizeEvent(ev)
	own := f.self != "" && strings.EqualFold(ev.From, f.self)
	text := ev.Text
	switch ev.Kind {
	case "msg", "me", "dm", "notice":
		if !own {
			var found bool
			text, found = f.highlight(ev.Text)
			mention = found || (ev.Kind == "dm" && f.self != "" && strings.EqualFold(ev.To, f.self))
		}
	}

	if ev.Sig == SigFailed {
		// A text that failed its check is shown as suspect: dimmed, with
		// the reason, and without highlights that would lend it weight.
		text = ev.Text + " [FAILED: " + ev.SigReason + "]"
		if ev.SigReason == SigReasonPending {
			text = ev.Text + " [UNVERIFIED: " + ev.SigReason + "]"
		}
		if f.color {
			text = sgrDim + text + sgrReset
		}
	}

	var b strings.Builder
	b.WriteString(f.stamp(ev))
	b.WriteString(f.sigMark(ev))
	if ev.Room != "" && ev.Kind != "dm" {
		b.WriteString(ev.Room + " ")
	}
	switch ev.Kind {
	case "msg":
		b.WriteString("<" + f.nick(ev.From) + "> " + text)
	case "me":
		b.WriteString("* " + f.nick(ev.From) + " " + text)
	case "dm":
		b.WriteString("[dm] " + f.nick(ev.From) + " -> " + f.nick(ev.To) + ": " + text)
	case "notice":
		if ev.From != "" {
			b.WriteString("-" + f.nick(ev.From) + "- ")
		} else {
			b.WriteString("-- ")
		}
		b.WriteString(text)
	case "join":
		b.WriteString("--> " + f.nick(ev.From) + " joined")
	case "part", "quit":
		b.WriteString("<-- " + f.nick(ev.From) + strings.TrimPrefix(presenceText(ev), ev.From))
	case "topic":
		b.WriteString("-- ")
		if ev.From != "" {
			b.WriteString(f.nick(ev.From) + strings.TrimPrefix(presenceText(ev), ev.From))
		} else {
			b.WriteString(presenceText(ev))
		}
	case "error":
		if f.color {
			b.WriteString(sgrErr + "!! " + ev.Text + sgrReset)
		} else {
			b.WriteString("!! " + ev.Text)
		}
	default:
		b.WriteString("-- ")
		if ev.From != "" {
			b.WriteString(f.nick(ev.From) + ": ")
		}
		b.WriteString(ev.Text)
	}
	b.WriteString(f.signedNote(ev))
	return b.String(), mention
}

// signedTimeSlack is how far the signed time of a replayed message may be
// from the server's before both are shown: clocks and delivery differ by
// seconds, and the stamp shows minutes.
const signedTimeSlack = time.Minute

// signedNote shows, after a verified message replayed from history or an
// offline DM, the time its sender signed it (PROTOCOL.md §13.16.7) when
// that differs from the server's time: the server chooses ts, but not cts.
func (f *tuiFormatter) signedNote(ev Event) string {
	if !ev.History || ev.Signed.IsZero() || ev.Sig != SigVerified {
		return ""
	}
	if d := ev.Signed.Sub(ev.Time); d > -signedTimeSlack && d < signedTimeSlack && !ev.Time.IsZero() {
		return ""
	}
	signed, server := ev.Signed.Local(), ev.Time.Local()
	layout := "15:04"
	if y, m, d := signed.Date(); ev.Time.IsZero() || y != server.Year() {
		layout = "Mon 2 Jan 2006 15:04"
	} else if m != server.Month() || d != server.Day() {
		layout = "Mon 2 Jan 15:04"
	}
	note := " (signed " + signed.Format(layout) + ")"
	if f.color {
		return sgrDim + note + sgrReset
	}
	return note
}

// sigMark is the compact mark before a checked message (PROTOCOL.md
// §13.16.7): "✓ " verified, "!! " failed, nothing for unsigned.
func (f *tuiFormatter) sigMark(ev Event) string {
	switch ev.Sig {
	case SigVerified:
		return "✓ "
	case SigFailed:
		if ev.SigReason == SigReasonPending {
			return "?? "
		}
		if f.color {
			return sgrErr + "!!" + sgrReset + " "
		}
		return "!! "
	}
	return ""
}

// highlight wraps every whole-word, case-insensitive occurrence of the own
// nick in text with the highlight attribute.
func (f *tuiFormatter) highlight(text string) (string, bool) {
	n := len(f.self)
	if n == 0 || len(text) < n {
		return text, false
	}
	var b strings.Builder
	found := false
	last := 0
	for i := 0; i+n <= len(text); {
		if !utf8.RuneStart(text[i]) || !strings.EqualFold(text[i:i+n], f.self) ||
			!wordBoundaryBefore(text, i) || !wordBoundaryAfter(text, i+n) {
			i++
			continue
		}
		found = true
		b.WriteString(text[last:i])
		b.WriteString(sgrHighlight + text[i:i+n] + sgrReset)
		i += n
		last = i
	}
	if !found {
		return text, false
	}
	b.WriteString(text[last:])
	return b.String(), true
}

// isNickRune reports the characters that continue a nick, so that "bob"
// does not match inside "bobby" or "bob_2".
func isNickRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-'
}

func wordBoundaryBefore(s string, i int) bool {
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return !isNickRune(r)
}

func wordBoundaryAfter(s string, i int) bool {
	if i >= len(s) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return !isNickRune(r)
}

// isMessageKind reports the kinds counted as messages by the new-messages
// marker; joins, parts and the like are not messages.
func isMessageKind(kind string) bool {
	switch kind {
	case "msg", "me", "dm", "notice":
		return true
	}
	return false
}

// newMessagesMarker is the line printed after a room's history replay.
// The messages are "new" only when seen says the user was in the room
// before (a live line shown in this run); else they are "earlier", as for
// someone who has just arrived: the client keeps no last-read position
// from one run to the next.
func newMessagesMarker(room string, n int, since time.Time, seen bool) string {
	noun := "messages"
	if n == 1 {
		noun = "message"
	}
	adj := " earlier "
	if seen {
		adj = " new "
	}
	s := "\u2014 " + strconv.Itoa(n) + adj + noun
	if room != "" {
		s += " in " + Sanitize(room)
	}
	if seen && !since.IsZero() {
		s += " since " + since.Local().Format("15:04")
	}
	return s + " \u2014"
}
