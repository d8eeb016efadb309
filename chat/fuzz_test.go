package chat

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzInput feeds the same bytes to everything that parses client input:
// the request decoder, the line parser, the sanitiser and the duration
// parser. None may panic, and each keeps its invariants.
func FuzzInput(f *testing.F) {
	for _, seed := range []string{
		`{"t":"hello","v":1,"client":"x","rooms":["#a","#b"]}`,
		`{"t":"msg","id":"c-1","room":"#general","text":"hi","kind":"me"}`,
		`{"t":"cmd","cmd":"ban","args":["bob","1d","spam"],"room":"#x"}`,
		`{"t":"msg","id":"a","room":5,"x":[{"y":null}]}`,
		`{"t":"ping","t":"pong"}`,
		`{"t":"msg","text":"\ud800\u202e\u001b[31m"}`,
		"/msg bob hi", "/ban bob 1h30m rude", "/part #x bye", "//not a command", "/join Rust",
		"\x1b]0;t\x07\x1b[2Jx\u009b1m\u202ey", "1d12h", "999999999w",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeRoundTrip(t, data)
		s := string(data)
		checkParseLine(t, s)
		checkSanitize(t, s)
		if d, err := ParseDuration(s); err == nil && (d <= 0 || d > maxDuration) {
			t.Fatalf("ParseDuration(%q) = %v", s, d)
		}
	})
}

func checkDecodeRoundTrip(t *testing.T, data []byte) {
	req, err := DecodeRequest(data)
	if err != nil {
		var ce *Error
		if !errors.As(err, &ce) || ce.Code == "" {
			t.Fatalf("DecodeRequest error is not an *Error with a code: %v", err)
		}
		if req != nil && req.ID != "" && !validID(req.ID) {
			t.Fatalf("invalid id %q returned for echo", req.ID)
		}
		return
	}
	p, err := EncodeRequest(req)
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) && ce.Code == CodeTooLong {
			return // re-encoding may escape more than the input did (U+2028)
		}
		t.Fatalf("EncodeRequest(%+v): %v", req, err)
	}
	again, err := DecodeRequest(p)
	if err != nil {
		t.Fatalf("re-decode %s: %v", p, err)
	}
	if !reflect.DeepEqual(normalize(req), normalize(again)) {
		t.Fatalf("round trip changed the request:\n %+v\n %+v", req, again)
	}
}

// normalize makes empty slices nil: "args":[] and no args mean the same.
func normalize(r *Request) *Request {
	c := *r
	if len(c.Args) == 0 {
		c.Args = nil
	}
	if len(c.Rooms) == 0 {
		c.Rooms = nil
	}
	return &c
}

func checkParseLine(t *testing.T, s string) {
	for _, room := range []string{"", "#general"} {
		req, err := ParseLine(s, room)
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) || ue.Text == "" {
				t.Fatalf("ParseLine error is not a *UsageError: %v", err)
			}
			continue
		}
		switch req.Type {
		case TypeMsg:
			if (req.Room == "") == (req.To == "") {
				t.Fatalf("ParseLine(%q) msg with room %q and to %q", s, req.Room, req.To)
			}
		case TypeCmd:
			if req.Cmd == "" || len(req.Args) > MaxArgs {
				t.Fatalf("ParseLine(%q) = %+v", s, req)
			}
			if req.Cmd == "join" && !ValidRoom(req.Room) {
				t.Fatalf("ParseLine(%q) joins invalid room %q", s, req.Room)
			}
		default:
			t.Fatalf("ParseLine(%q) type %q", s, req.Type)
		}
	}
}

func checkSanitize(t *testing.T, s string) {
	for _, multiline := range []bool{false, true} {
		out := sanitize(s, multiline)
		if !utf8.ValidString(out) {
			t.Fatalf("sanitize(%q) is not UTF-8: %q", s, out)
		}
		if utf8.ValidString(s) && len(out) > len(s) {
			t.Fatalf("sanitize(%q) grew to %q", s, out)
		}
		if again := sanitize(out, multiline); again != out {
			t.Fatalf("sanitize is not idempotent: %q -> %q -> %q", s, out, again)
		}
		for _, r := range out {
			bad := r < 0x20 && !(multiline && r == '\n') || r == 0x7f || r >= 0x80 && r < 0xa0 ||
				r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x2028 || r == 0x2029
			if bad {
				t.Fatalf("sanitize(%q) left %U in %q", s, r, out)
			}
		}
		if strings.Contains(out, "\x1b") {
			t.Fatalf("ESC survived")
		}
	}
}
