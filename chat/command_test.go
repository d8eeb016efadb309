package chat

import (
	"errors"
	"reflect"
	"testing"
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
			var ce *Error
			if !errors.As(err, &ce) || ce.Code != tc.code {
				t.Errorf("ParseLine(%q, %q) error %v, want code %s", tc.line, tc.room, err, tc.code)
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

// Every command the parser knows, the hub serves, and vice versa.
func TestCommandTableMatchesHandlers(t *testing.T) {
	for _, c := range Commands() {
		if _, ok := handlers[c.Name]; !ok {
			t.Errorf("/%s has no handler", c.Name)
		}
		if c.Usage == "" || c.Help == "" {
			t.Errorf("/%s lacks usage or help", c.Name)
		}
	}
	if len(handlers) != len(commandTable) {
		t.Errorf("%d handlers for %d commands", len(handlers), len(commandTable))
	}
	for alias, name := range commandAliases {
		if c, ok := LookupCommand("/" + alias); !ok || c.Name != name {
			t.Errorf("alias %s does not resolve to %s", alias, name)
		}
	}
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
