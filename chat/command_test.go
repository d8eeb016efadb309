package chat

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestParseLine(t *testing.T) {
	const cur = "#general"
	for _, tc := range []struct {
		line, room string
		want       *Request
		code       string
	}{
		{line: "hello there", room: cur, want: &Request{Type: TypeMsg, Room: cur, Text: "hello there"}},
		{line: "  leading spaces stay", room: cur, want: &Request{Type: TypeMsg, Room: cur, Text: "  leading spaces stay"}},
		{line: "hello\r\n", room: cur, want: &Request{Type: TypeMsg, Room: cur, Text: "hello"}},
		{line: "//slash at start", room: cur, want: &Request{Type: TypeMsg, Room: cur, Text: "/slash at start"}},
		{line: "hello", room: "", code: CodeBadRequest},
		{line: "   ", room: cur, code: CodeEmpty},
		{line: "/msg Bob hi  there", room: "", want: &Request{Type: TypeMsg, To: "bob", Text: "hi  there"}},
		{line: "/query bob hi", room: "", want: &Request{Type: TypeMsg, To: "bob", Text: "hi"}},
		{line: "/msg bob", room: cur, code: CodeBadRequest},
		{line: "/me waves", room: cur, want: &Request{Type: TypeMsg, Room: cur, Kind: KindMe, Text: "waves"}},
		{line: "/me waves", room: "", code: CodeBadRequest},
		{line: "/join rust", room: "", want: &Request{Type: TypeCmd, Cmd: "join", Room: "#rust"}},
		{line: "/J #Rust", room: "", want: &Request{Type: TypeCmd, Cmd: "join", Room: "#rust"}},
		{line: "/join #bad!", room: "", code: CodeBadRoom},
		{line: "/join", room: "", code: CodeBadRequest},
		{line: "/part", room: cur, want: &Request{Type: TypeCmd, Cmd: "part", Room: cur}},
		{line: "/leave #x bye now", room: cur, want: &Request{Type: TypeCmd, Cmd: "part", Room: "#x", Args: []string{"bye now"}}},
		{line: "/part bye", room: cur, want: &Request{Type: TypeCmd, Cmd: "part", Room: cur, Args: []string{"bye"}}},
		{line: "/part", room: "", code: CodeBadRequest},
		{line: "/topic", room: cur, want: &Request{Type: TypeCmd, Cmd: "topic", Room: cur}},
		{line: "/topic new  topic", room: cur, want: &Request{Type: TypeCmd, Cmd: "topic", Room: cur, Args: []string{"new  topic"}}},
		{line: "/topic #x new", room: cur, want: &Request{Type: TypeCmd, Cmd: "topic", Room: "#x", Args: []string{"new"}}},
		{line: "/who", room: cur, want: &Request{Type: TypeCmd, Cmd: "who", Room: cur}},
		{line: "/NAMES #x", room: cur, want: &Request{Type: TypeCmd, Cmd: "who", Room: "#x"}},
		{line: "/who x y", room: cur, code: CodeBadRequest},
		{line: "/rooms", room: "", want: &Request{Type: TypeCmd, Cmd: "rooms"}},
		{line: "/list", room: "", want: &Request{Type: TypeCmd, Cmd: "rooms"}},
		{line: "/whois Bob", room: "", want: &Request{Type: TypeCmd, Cmd: "whois", Args: []string{"bob"}}},
		{line: "/whois", room: "", code: CodeBadRequest},
		{line: "/kick bob spam  spam", room: "", want: &Request{Type: TypeCmd, Cmd: "kick", Args: []string{"bob", "spam  spam"}}},
		{line: "/kick bob", room: "", want: &Request{Type: TypeCmd, Cmd: "kick", Args: []string{"bob"}}},
		{line: "/ban bob 2h being rude", room: "", want: &Request{Type: TypeCmd, Cmd: "ban", Args: []string{"bob", "2h", "being rude"}}},
		{line: "/ban bob rude", room: "", want: &Request{Type: TypeCmd, Cmd: "ban", Args: []string{"bob", "", "rude"}}},
		{line: "/ban bob 1d12h", room: "", want: &Request{Type: TypeCmd, Cmd: "ban", Args: []string{"bob", "1d12h"}}},
		{line: "/ban bob", room: "", want: &Request{Type: TypeCmd, Cmd: "ban", Args: []string{"bob"}}},
		{line: "/mute bob 10m", room: "", want: &Request{Type: TypeCmd, Cmd: "mute", Args: []string{"bob", "10m"}}},
		{line: "/mute bob forever", room: "", code: CodeBadRequest},
		{line: "/unban bob", room: "", want: &Request{Type: TypeCmd, Cmd: "unban", Args: []string{"bob"}}},
		{line: "/unmute bob x", room: "", code: CodeBadRequest},
		{line: "/bans", room: "", want: &Request{Type: TypeCmd, Cmd: "bans"}},
		{line: "/quit", room: cur, want: &Request{Type: TypeCmd, Cmd: "quit"}},
		{line: "/exit see you", room: cur, want: &Request{Type: TypeCmd, Cmd: "quit", Args: []string{"see you"}}},
		{line: "/help msg", room: "", want: &Request{Type: TypeCmd, Cmd: "help", Args: []string{"msg"}}},
		{line: "/motd a new day", room: "", want: &Request{Type: TypeCmd, Cmd: "motd", Args: []string{"a new day"}}},
		{line: "/nick alice2", room: "", want: &Request{Type: TypeCmd, Cmd: "nick", Args: []string{"alice2"}}},
		{line: "/frob a  b", room: cur, want: &Request{Type: TypeCmd, Cmd: "frob", Room: cur, Args: []string{"a", "b"}}},
		{line: "/", room: cur, code: CodeUnknownCommand},
	} {
		got, err := ParseLine(tc.line, tc.room)
		if tc.code != "" {
			var ue *UsageError
			if !errors.As(err, &ue) || ue.Code != tc.code {
				t.Errorf("ParseLine(%q, %q) error %v, want a *UsageError with code %s", tc.line, tc.room, err, tc.code)
			} else if strings.HasPrefix(err.Error(), "chat") {
				t.Errorf("ParseLine(%q, %q) error %q shows the package name", tc.line, tc.room, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseLine(%q, %q): %v", tc.line, tc.room, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseLine(%q, %q) =\n %+v, want\n %+v", tc.line, tc.room, got, tc.want)
		}
	}
}

// A usage error names the command's usage line, so that a client can show
// it as an error of its own; it never reads like a Go error.
func TestParseLineUsageError(t *testing.T) {
	for line, usage := range map[string]string{
		"/msg bob":       "/msg NAME TEXT",
		"/QUERY":         "/msg NAME TEXT",
		"/join":          "/join ROOM",
		"/who #a b":      "/who [ROOM]",
		"/mute bob x":    "/mute NAME [DURATION]",
		"/rooms now":     "/rooms",
		"/fingerprint x": "/fingerprint",
	} {
		_, err := ParseLine(line, "#general")
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("ParseLine(%q) = %v (%T), want a *UsageError", line, err, err)
			continue
		}
		if ue.Usage != usage || ue.Code != CodeBadRequest || err.Error() != "usage: "+usage {
			t.Errorf("ParseLine(%q) = %+v, want usage %q", line, ue, usage)
		}
	}
	_, err := ParseLine("/join #no!", "")
	var ue *UsageError
	if !errors.As(err, &ue) || ue.Code != CodeBadRoom || ue.Usage != "/join ROOM" || strings.HasPrefix(err.Error(), "chat:") {
		t.Errorf("bad room: %v %+v", err, ue)
	}
	if _, err := ParseLine("hi", ""); err != ErrNoRoom || err.Error() != "not in a room: /join one first" {
		t.Errorf("no room: %v", err)
	}
}

// sampleLine fills a usage line with arguments that a hub accepts: with
// all optional arguments when full is set, else with the required ones.
func sampleLine(usage string, full bool) string {
	words := strings.Fields(usage)
	var out []string
	for _, w := range words {
		optional := strings.HasPrefix(w, "[")
		if optional && !full {
			continue
		}
		switch strings.Trim(w, "[]") {
		case "ROOM", "ROOM|NAME":
			w = "#general"
		case "N":
			w = "10"
		case "ID":
			w = "1"
		case "before":
			w = "before"
		case "NAME":
			w = "bob"
		case "TEXT", "REASON":
			w = "just because"
		case "DURATION":
			w = "1h"
		case "COMMAND":
			w = "msg"
		}
		out = append(out, w)
	}
	return strings.Join(out, " ")
}

// Every command in the one table parses from its own usage line and is
// served by the hub, under its name and each alias; local commands parse
// but no server serves them. Usage lines thus cannot drift from the parser
// or the handlers.
func TestEveryCommandParsesAndDispatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, &Config{FloodRate: -1, MaxSessionsPerUser: -1})
		hs.login("bob", false)
		n := 0
		for _, c := range commandTable {
			if c.usage == "" || c.help == "" || c.parse == nil || !strings.HasPrefix(c.usage, "/"+c.name) {
				t.Errorf("/%s: usage %q, help %q, parse set %v", c.name, c.usage, c.help, c.parse != nil)
				continue
			}
			if !c.local && c.run == nil {
				t.Errorf("/%s has no handler", c.name)
				continue
			}
			for _, name := range append([]string{c.name}, c.aliases...) {
				for _, full := range []bool{false, true} {
					line := "/" + name + strings.TrimPrefix(sampleLine(c.usage, full), "/"+c.name)
					req, err := ParseLine(line, "#general")
					if err != nil {
						t.Errorf("ParseLine(%q): %v", line, err)
						continue
					}
					switch {
					case c.name == "msg" || c.name == "me":
						if req.Type != TypeMsg {
							t.Errorf("ParseLine(%q) = %+v, want a msg", line, req)
						}
					case req.Type != TypeCmd || req.Cmd != c.name:
						t.Errorf("ParseLine(%q) = %+v, want cmd %s", line, req, c.name)
						continue
					}
					// A fresh admin for each line: /part and /quit change
					// what the next line could do.
					n++
					u := hs.login(fmt.Sprintf("u%d", n), true)
					u.take()
					req.ID = u.id()
					u.send(req)
					synctest.Wait()
					e := answer(t, u.take(), req.ID)
					if c.local {
						if e.Code != CodeUnknownCommand {
							t.Errorf("%q: a server served the local command: %s %q", line, e.Code, e.Text)
						}
						continue
					}
					switch e.Code {
					case CodeUnknownCommand, CodeBadRequest, CodeBadRoom:
						t.Errorf("%q: error %s %q", line, e.Code, e.Text)
					}
				}
			}
		}
	})
}

// Every error event the hub sends reads as text for people, without the
// Go package prefix.
func TestErrorEventsHaveNoPackagePrefix(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, noFlood)
		alice := hs.login("alice", false)
		for _, line := range []string{"/msg nobody hi", "/kick bob", "/who #nowhere", "/frob", "/help frob", "/part #x"} {
			alice.line(line, "#general")
		}
		alice.sendRaw([]byte(`{"t":"msg","id":"x","room":5}`))
		alice.sendRaw([]byte(`[1]`))
		synctest.Wait()
		errs := ofType(alice.take(), TypeError)
		if len(errs) != 8 {
			t.Fatalf("want 8 errors, got %s", dump(errs))
		}
		for _, e := range errs {
			if strings.HasPrefix(e.Text, "chat") || e.Text == "" {
				t.Errorf("error text %q", e.Text)
			}
		}
	})
}

// commandTable is the only list of commands: no switch case, map key or
// list elsewhere in the package's code spells command names, so nothing can
// drift from it.
func TestNoSecondCommandList(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no source files: %v", err)
	}
	checked := 0
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, where := range secondCommandLists(t, file, src) {
			t.Errorf("%s: command names listed outside commandTable", where)
		}
	}
	if checked == 0 {
		t.Fatal("no non-test source files checked")
	}
}

// The check finds the lists this package used to keep beside the table.
func TestNoSecondCommandListSeesOne(t *testing.T) {
	src := []byte(`package chat
var aliases = map[string]string{"j": "join", "names": "who"}
var handlers = map[string]int{"join": 0, "part": 1}
var names = []string{"/join", "/fingerprint"}
func parse(name string) {
	switch name {
	case "msg":
	}
}
func decode(key string) {
	switch key {
	case "rooms", "topic":
	}
}
func init() { commandTable = nil; _ = []string{"join", "part"} }
`)
	got := secondCommandLists(t, "old.go", src)
	if len(got) != 4 {
		t.Errorf("found %d lists, want 4 (aliases, handlers, names, the switch): %v", len(got), got)
	}
}

// secondCommandLists returns the positions in src that spell command names
// in a switch case or in a literal with two or more of them, except in the
// init that fills commandTable and in switches on JSON keys.
func secondCommandLists(t *testing.T, file string, src []byte) []string {
	t.Helper()
	names := map[string]bool{}
	for _, c := range commandTable {
		names[c.name] = true
		for _, a := range c.aliases {
			names[a] = true
		}
	}
	isName := func(e ast.Expr) bool {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return false
		}
		s, err := strconv.Unquote(lit.Value)
		return err == nil && names[strings.TrimPrefix(s, "/")]
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			return n.Name.Name != "init" || !assignsCommandTable(n)
		case *ast.SwitchStmt:
			// The JSON decoders switch on keys, some of which ("rooms",
			// "topic") are spelt like commands.
			if id, ok := n.Tag.(*ast.Ident); ok && id.Name == "key" {
				return false
			}
		case *ast.CaseClause:
			for _, e := range n.List {
				if isName(e) {
					found = append(found, fset.Position(e.Pos()).String())
					break
				}
			}
		case *ast.CompositeLit:
			count := 0
			for _, e := range n.Elts {
				if kv, ok := e.(*ast.KeyValueExpr); ok {
					if isName(kv.Value) {
						count++
					}
					e = kv.Key
				}
				if isName(e) {
					count++
				}
			}
			if count >= 2 {
				found = append(found, fset.Position(n.Pos()).String())
			}
		}
		return true
	})
	return found
}

// assignsCommandTable reports whether fn assigns commandTable: the one
// place command names are listed.
func assignsCommandTable(fn *ast.FuncDecl) bool {
	found := false
	ast.Inspect(fn, func(n ast.Node) bool {
		if a, ok := n.(*ast.AssignStmt); ok {
			for _, l := range a.Lhs {
				if id, ok := l.(*ast.Ident); ok && id.Name == "commandTable" {
					found = true
				}
			}
		}
		return !found
	})
	return found
}

// The client's /help shows the server's list, then its own commands; other
// replies are shown as sent.
func TestHelpTextAddsClientCommands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, noFlood)
		alice := hs.login("alice", false)
		all := alice.line("/help", "#general")
		one := alice.line("/help fingerprint", "#general")
		synctest.Wait()
		evs := alice.take()
		var reply *Event
		for _, e := range ofType(evs, TypeReply) {
			if e.ID == all {
				reply = e
			}
		}
		if reply == nil {
			t.Fatalf("no help reply: %s", dump(evs))
		}
		mustFail(t, evs, one, CodeUnknownCommand)
		for _, c := range reply.Commands {
			if c.Name == "fingerprint" {
				t.Errorf("the server lists the client's own command: %+v", c)
			}
			if c.Name == "who" && !slices.Equal(c.Aliases, []string{"names"}) {
				t.Errorf("help lists /who without its alias: %+v", c)
			}
		}
		if !strings.Contains(reply.Text, "list the members of a room (also /names)") {
			t.Errorf("help text does not name the aliases:\n%s", reply.Text)
		}
		text := HelpText(reply)
		if !strings.HasPrefix(text, reply.Text+"\n") {
			t.Errorf("HelpText does not start with the server's list:\n%s", text)
		}
		local := ClientCommands()
		if len(local) == 0 || local[0].Name != "fingerprint" || !local[0].Local {
			t.Fatalf("ClientCommands() = %+v", local)
		}
		for _, c := range local {
			if !strings.Contains(text, c.Usage) || !strings.Contains(text, c.Help) {
				t.Errorf("HelpText lacks %s:\n%s", c.Usage, text)
			}
		}
		if strings.Count(text, "\n") != len(reply.Commands)+len(local)-1 {
			t.Errorf("want one line per command:\n%s", text)
		}
		for _, e := range []*Event{
			{Type: TypeReply, Cmd: "help", Commands: reply.Commands[:1], Text: "just one"},
			{Type: TypeReply, Cmd: "who", Text: "#general (1): alice"},
		} {
			if got := HelpText(e); got != e.Text {
				t.Errorf("HelpText(%+v) = %q, want the text as sent", e, got)
			}
		}
		for _, c := range Commands() {
			if c.Local {
				t.Errorf("Commands() lists the local /%s", c.Name)
			}
		}
	})
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90s":   90 * time.Second,
		"1h30m": 90 * time.Minute,
		"7d":    7 * 24 * time.Hour,
		"2w":    14 * 24 * time.Hour,
		"1d1d":  48 * time.Hour,
		"520w":  520 * 7 * 24 * time.Hour,
	} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0s", "5", "h", "1y", "-1h", "1.5h", "1h ", "999999999w", "3651d", "1000000000s"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, d)
		}
	}
}
