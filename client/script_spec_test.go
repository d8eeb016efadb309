package client

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"securechat/chat"
)

// The JSON event format of script mode as PROTOCOL.md §17.2 lists it. The
// test below checks the document against these tables and the client's
// output against both, so neither can drift alone.
var (
	scriptJSONFields = []struct{ key, typ string }{
		{"ts", "string"}, {"id", "number"}, {"kind", "string"}, {"room", "string"},
		{"from", "string"}, {"to", "string"}, {"text", "string"}, {"history", "bool"},
		{"line", "number"}, {"code", "string"}, {"sig", "string"}, {"sig_reason", "string"},
	}
	scriptJSONKinds = []string{"msg", "me", "dm", "notice", "topic", "join", "part", "quit", "error", "system"}
)

// specTable returns the cells of the rows of the first Markdown table
// after the line of section that contains intro, without the header row
// and without backquotes around a cell.
func specTable(t *testing.T, section, intro string) [][]string {
	t.Helper()
	i := strings.Index(section, intro)
	if i < 0 {
		t.Fatalf("PROTOCOL.md §17 has no %q", intro)
	}
	var rows [][]string
	header := true
	for _, l := range strings.Split(section[i:], "\n")[1:] {
		if !strings.HasPrefix(l, "|") {
			if len(rows) > 0 || !header {
				break
			}
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(l, "|"), "|") {
			cells = append(cells, strings.Trim(strings.TrimSpace(c), "`"))
		}
		switch {
		case header:
			header = false
		case strings.HasPrefix(cells[0], "---"):
		default:
			rows = append(rows, cells)
		}
	}
	return rows
}

// column returns cell n of every row.
func column(rows [][]string, n int) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r[n])
	}
	return out
}

func scriptSpec(t *testing.T) string {
	t.Helper()
	spec, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(spec), "## 17. Script mode of the reference client")
	if i < 0 {
		t.Fatal("PROTOCOL.md has no §17 on script mode")
	}
	return string(spec[i:])
}

// TestScriptJSONMatchesSpec runs a script client with --json against a
// server that sends every kind of event, rejects one line and answers a
// command, with input that the client must refuse in places, and checks
// every object printed against PROTOCOL.md §17.
func TestScriptJSONMatchesSpec(t *testing.T) {
	spec := scriptSpec(t)
	fields := specTable(t, spec, "With `--json` each object has exactly these keys")
	keys, types := column(fields, 0), column(fields, 1)
	var wantKeys, wantTypes []string
	for _, f := range scriptJSONFields {
		wantKeys, wantTypes = append(wantKeys, f.key), append(wantTypes, f.typ)
	}
	if !slices.Equal(keys, wantKeys) || !slices.Equal(types, wantTypes) {
		t.Errorf("PROTOCOL.md §17.2 lists keys %q of types %q;\nthe client prints %q of types %q", keys, types, wantKeys, wantTypes)
	}
	kinds := column(specTable(t, spec, "`kind` is one of:"), 0)
	if !slices.Equal(kinds, scriptJSONKinds) {
		t.Errorf("PROTOCOL.md §17.2 lists kinds %q; the client prints %q", kinds, scriptJSONKinds)
	}
	causes := specTable(t, spec, "The client does not send a line")
	if len(causes) < 4 {
		t.Fatalf("PROTOCOL.md §17.3 lists %d causes, want at least 4", len(causes))
	}
	texts := column(causes, 2)
	// The documented texts as patterns: N and L are numbers, … anything.
	var refusals []*regexp.Regexp
	for _, txt := range texts {
		p := regexp.QuoteMeta(txt)
		p = strings.NewReplacer(`N`, `\d+`, `L`, `\d+`, `…`, `.*`).Replace(p)
		refusals = append(refusals, regexp.MustCompile("^"+p+"$"))
	}

	s := startFakeChatServer(t, func(c *fakeConn) {
		if !c.login(nil) {
			return
		}
		ts := "2026-11-25T10:00:00.123Z"
		for _, ev := range []*chat.Event{
			{Type: chat.TypeRoom, Room: "#general", Topic: "t", Members: []string{"alice", "bob"}},
			{Type: chat.TypeMsg, MID: 1, TS: ts, Kind: chat.KindMsg, Room: "#general", From: "bob", Text: "old", History: true},
			{Type: chat.TypeMsg, MID: 2, TS: ts, Kind: chat.KindJoin, Room: "#general", From: "carol"},
			{Type: chat.TypeMsg, MID: 3, TS: ts, Kind: chat.KindMe, Room: "#general", From: "bob", Text: "waves"},
			{Type: chat.TypeMsg, MID: 4, TS: ts, Kind: chat.KindDM, From: "bob", To: "alice", Text: "psst"},
			{Type: chat.TypeMsg, MID: 5, TS: ts, Kind: chat.KindTopic, Room: "#general", From: "bob", Text: "new topic"},
			{Type: chat.TypeMsg, MID: 6, TS: ts, Kind: chat.KindNotice, Text: "maintenance"},
			{Type: chat.TypeMsg, MID: 7, TS: ts, Kind: "sparkle", Room: "#general", From: "bob", Text: "from the future"},
			{Type: chat.TypeMsg, MID: 8, TS: ts, Kind: chat.KindPart, Room: "#general", From: "carol", Text: "bye"},
			{Type: chat.TypeMsg, MID: 9, TS: ts, Kind: chat.KindQuit, Room: "#general", From: "bob", Text: "quit"},
			{Type: chat.TypeError, Code: chat.CodeBadRoom, Text: "not a room: #Bad!"},
		} {
			c.send(ev)
		}
		mid := uint64(100)
		for req := c.next(); req != nil; req = c.next() {
			switch {
			case req.Type == chat.TypeMsg && req.Text == "reject me":
				c.send(&chat.Event{Type: chat.TypeError, ID: req.ID, Code: chat.CodeForbidden, Text: "not you"})
			case req.Type == chat.TypeMsg:
				mid++
				c.send(&chat.Event{Type: chat.TypeMsg, MID: mid, TS: ts, Kind: chat.KindMsg, Room: req.Room, From: "alice", Text: req.Text})
				c.send(&chat.Event{Type: chat.TypeAck, ID: req.ID, MID: mid})
			case req.Type == chat.TypeCmd && req.Cmd == "who":
				c.send(&chat.Event{Type: chat.TypeReply, ID: req.ID, Cmd: "who", Room: req.Room, Members: []string{"alice"},
					Text: "members of #general:\nalice"})
				c.send(&chat.Event{Type: chat.TypeAck, ID: req.ID})
			default:
				c.send(&chat.Event{Type: chat.TypeError, ID: req.ID, Code: chat.CodeUnknownCommand, Text: "unexpected"})
			}
		}
	})
	r := startScript(t, s, true)
	input := []string{
		"hello",                     // 1
		"",                          // 2: blank, skipped
		"reject me",                 // 3: rejected by the server
		strings.Repeat("a", 4097),   // 4: over the text limit
		"/who",                      // 5: a reply answers it
		"/msg",                      // 6: a usage error
		strings.Repeat("b", 70<<10), // 7: over any request
		"/topic #x " + strings.Repeat("c", 17000), // 8: a command over any request
		"bye", // 9
	}
	r.feed(strings.Join(input, "\n") + "\n")
	err := r.wait(t)
	if !plainFailure(err) {
		t.Fatalf("error %v, want a failure of no particular kind (exit code 1)", err)
	}
	if !strings.Contains(err.Error(), "4 of the input lines were not sent; 1 of the lines sent were rejected by the server") {
		t.Errorf("error %q does not count the refused and the rejected lines", err)
	}

	type event struct {
		Kind, Text, Code string
		Line             int
	}
	var events []event
	seenKinds := map[string]bool{}
	for i, l := range strings.Split(strings.TrimSuffix(r.out.String(), "\n"), "\n") {
		dec := json.NewDecoder(strings.NewReader(l))
		dec.UseNumber()
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("output line %d is not a JSON object: %s", i+1, l)
		}
		var got []string
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("output line %d: %v", i+1, err)
			}
			key := tok.(string)
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("output line %d: %v", i+1, err)
			}
			var gotType string
			switch v.(type) {
			case string:
				gotType = "string"
			case json.Number:
				gotType = "number"
			case bool:
				gotType = "bool"
			default:
				gotType = "other"
			}
			if j := slices.Index(wantKeys, key); j >= 0 && wantTypes[j] != gotType {
				t.Errorf("output line %d: %q is a %s, the spec says %s", i+1, key, gotType, wantTypes[j])
			}
			got = append(got, key)
		}
		if !slices.Equal(got, wantKeys) {
			t.Errorf("output line %d has keys %q, want exactly %q in that order", i+1, got, wantKeys)
		}
		var ev event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(scriptJSONKinds, ev.Kind) {
			t.Errorf("output line %d has kind %q, which the spec does not list", i+1, ev.Kind)
		}
		if (ev.Kind == "error") != (ev.Code != "") {
			t.Errorf("output line %d: kind %q with code %q; the spec says code is set exactly on errors", i+1, ev.Kind, ev.Code)
		}
		seenKinds[ev.Kind] = true
		events = append(events, ev)
	}
	for _, k := range scriptJSONKinds {
		if !seenKinds[k] {
			t.Errorf("no %q event was printed, though the server sent one", k)
		}
	}

	// Which event answers which line.
	byLine := map[int][]event{}
	for _, ev := range events {
		if ev.Line != 0 {
			byLine[ev.Line] = append(byLine[ev.Line], ev)
		}
		if ev.Kind == "error" && ev.Line == 0 && ev.Code != chat.CodeBadRoom {
			t.Errorf("an error answers no line: %+v", ev)
		}
	}
	want := map[int]struct {
		kind, code string
		refused    bool // the text must match a §17.3 pattern
	}{
		3: {"error", chat.CodeForbidden, false},
		4: {"error", chat.CodeTooLong, true},
		5: {"system", "", false},
		6: {"error", chat.CodeBadRequest, false},
		7: {"error", chat.CodeTooLong, true},
		8: {"error", chat.CodeTooLong, true},
	}
	for line, w := range want {
		evs := byLine[line]
		if len(evs) == 0 {
			t.Errorf("nothing answers input line %d", line)
			continue
		}
		for _, ev := range evs {
			if ev.Kind != w.kind || ev.Code != w.code {
				t.Errorf("line %d: got %+v, want kind %q code %q", line, ev, w.kind, w.code)
			}
			if w.refused && !slices.ContainsFunc(refusals, func(re *regexp.Regexp) bool { return re.MatchString(ev.Text) }) {
				t.Errorf("line %d: text %q is none of those PROTOCOL.md §17.3 lists", line, ev.Text)
			}
		}
	}
	for line := range byLine {
		if _, ok := want[line]; !ok {
			t.Errorf("line %d is answered by %+v; only lines 3 to 8 should be", line, byLine[line])
		}
	}
	// The lines that could be sent were sent, in order, around the refused ones.
	var echoed []string
	for _, ev := range events {
		if ev.Kind == "msg" && ev.Line == 0 && !strings.HasPrefix(ev.Text, "old") && ev.Text != "from the future" {
			echoed = append(echoed, ev.Text)
		}
	}
	if !slices.Equal(echoed, []string{"hello", "bye"}) {
		t.Errorf("the server echoed %q, want hello and bye", echoed)
	}
}

// TestScriptPlainNamesLines checks the plain form of the same answers:
// "[error] line N: text".
func TestScriptPlainNamesLines(t *testing.T) {
	s := startFakeChatServer(t, func(c *fakeConn) {
		if !c.login(&chat.Limits{Text: 10}) {
			return
		}
		for req := c.next(); req != nil; req = c.next() {
			c.send(&chat.Event{Type: chat.TypeMsg, MID: 1, Kind: chat.KindMsg, Room: req.Room, From: "alice", Text: req.Text})
			c.send(&chat.Event{Type: chat.TypeAck, ID: req.ID, MID: 1})
		}
	})
	r := startScript(t, s, false)
	r.feed("short\n\neleven char\nok\n")
	err := r.wait(t)
	if !plainFailure(err) {
		t.Fatalf("error %v, want a failure of no particular kind (exit code 1)", err)
	}
	out := r.out.String()
	if !strings.Contains(out, "\n[error] line 3: the message is 11 bytes, over the server's limit of 10; not sent\n") {
		t.Errorf("no error names line 3:\n%s", out)
	}
	// The refusal may come before the echo of line 1, which is in flight
	// when line 3 is refused; the lines sent keep their order.
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if text, ok := strings.CutPrefix(l, "[#general] alice: "); ok {
			got = append(got, text)
		}
	}
	if !slices.Equal(got, []string{"short", "ok"}) {
		t.Errorf("echoed %q, want short and ok:\n%s", got, out)
	}
	if !strings.Contains(err.Error(), "1 of the input lines were not sent") {
		t.Errorf("error %q", err)
	}
}
