package chat

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeRequest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		want   *Request // nil: no request comes back
		code   string   // "" = no error
		wantID string   // the id the error can echo
	}{
		{name: "hello", in: `{"t":"hello","v":1,"client":"sc/1","rooms":["#a"]}`,
			want: &Request{Type: TypeHello, V: 1, Client: "sc/1", Rooms: []string{"#a"}}},
		{name: "msg", in: `{"t":"msg","id":"c-17","room":"#general","text":"hi"}`,
			want: &Request{Type: TypeMsg, ID: "c-17", Room: "#general", Text: "hi"}},
		{name: "cmd", in: ` {"t":"cmd","cmd":"ban","args":["bob","","why"]} ` + "\n",
			want: &Request{Type: TypeCmd, Cmd: "ban", Args: []string{"bob", "", "why"}}},
		{name: "unknown keys ignored", in: `{"t":"ping","x":{"y":[1,2,{"z":null}]},"T":"msg","Text":"no"}`,
			want: &Request{Type: TypePing}},
		{name: "null is absent", in: `{"t":"msg","text":null}`, want: &Request{Type: TypeMsg}},
		{name: "lone surrogate becomes U+FFFD", in: `{"t":"msg","text":"\ud800x"}`,
			want: &Request{Type: TypeMsg, Text: "\ufffdx"}},
		{name: "unknown type is not a decoding error", in: `{"t":"future"}`, want: &Request{Type: "future"}},
		{name: "keys are case-sensitive", in: `{"T":"msg"}`, want: &Request{}, code: CodeBadRequest},
		{name: "wrong type keeps id", in: `{"t":"msg","id":"a1","room":5}`,
			want: &Request{Type: TypeMsg, ID: "a1"}, code: CodeBadRequest, wantID: "a1"},
		{name: "wrong type after id", in: `{"id":"a2","t":"msg","args":"x"}`,
			want: &Request{Type: TypeMsg, ID: "a2"}, code: CodeBadRequest, wantID: "a2"},
		{name: "bad id is dropped", in: `{"t":"msg","id":"has space"}`, want: &Request{Type: TypeMsg}, code: CodeBadRequest},
		{name: "id too long", in: `{"t":"msg","id":"` + strings.Repeat("x", MaxID+1) + `"}`,
			want: &Request{Type: TypeMsg}, code: CodeBadRequest},
		{name: "too many args", in: `{"t":"cmd","id":"a3","args":["1","2","3","4","5","6","7","8","9"]}`,
			want: &Request{Type: TypeCmd, ID: "a3", Args: []string{"1", "2", "3", "4", "5", "6", "7", "8", "9"}},
			code: CodeBadRequest, wantID: "a3"},
		{name: "duplicate key", in: `{"t":"msg","id":"a","id":"b"}`, code: CodeBadRequest},
		{name: "not an object", in: `["t","msg"]`, code: CodeBadRequest},
		{name: "string", in: `"msg"`, code: CodeBadRequest},
		{name: "empty", in: ``, code: CodeBadRequest},
		{name: "truncated", in: `{"t":"msg"`, code: CodeBadRequest},
		{name: "trailing object", in: `{"t":"ping"}{"t":"ping"}`, code: CodeBadRequest},
		{name: "trailing garbage", in: `{"t":"ping"} x`, code: CodeBadRequest},
		{name: "invalid UTF-8", in: "{\"t\":\"msg\",\"text\":\"\xc3\x28\"}", code: CodeBadUTF8},
		{name: "too big", in: `{"t":"msg","text":"` + strings.Repeat("a", MaxPayload) + `"}`, code: CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeRequest([]byte(tc.in))
			if tc.code == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
			} else {
				var ce *Error
				if !errors.As(err, &ce) || ce.Code != tc.code {
					t.Fatalf("error %v, want code %s", err, tc.code)
				}
				if !strings.HasPrefix(err.Error(), "chat: ") {
					t.Errorf("error text %q lacks the package prefix", err)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if got != nil && got.ID != tc.wantID && tc.code != "" {
				t.Errorf("id %q, want %q", got.ID, tc.wantID)
			}
		})
	}
}

func TestEventRoundTrip(t *testing.T) {
	for _, e := range []*Event{
		{Type: TypeWelcome, ID: "h", V: 1, User: "alice", Admin: true, MOTD: "line 1\nline 2",
			Limits: &Limits{Text: 4096, Topic: 512, Burst: 5, Rate: 2, History: 50, Ping: 30},
			Rooms:  []RoomInfo{{Room: "#general", Count: 3}}},
		{Type: TypeMsg, MID: 1 << 40, TS: "2026-11-25T10:00:00.123Z", Kind: KindMe, Room: "#x", From: "bob", Text: "<waves> & \"quotes\"", History: true},
		{Type: TypeMsg, MID: 7, TS: "2026-11-25T10:00:00.000Z", Kind: KindDM, From: "bob", To: "alice", Text: "é ☃ 🎉"},
		{Type: TypeRoom, Room: "#x", Topic: "t", Members: []string{"a", "b"}, More: true},
		{Type: TypeReply, ID: "r", Cmd: "whois", User: "bob", Sessions: 2, Since: "2026-11-25T10:00:00.000Z", Joined: []string{"#a"}, Text: "bob is online"},
		{Type: TypeReply, ID: "r", Cmd: "bans", Bans: []Restriction{{User: "eve", Until: "2026-11-26T00:00:00.000Z", By: "root", Reason: "spam"}},
			Mutes: []Restriction{{User: "mallory", By: "root"}}},
		{Type: TypeReply, Cmd: "help", Commands: []CommandInfo{{Name: "ban", Usage: "/ban NAME", Help: "h", Admin: true, Aliases: []string{"b"}}}},
		{Type: TypeReply, ID: "r", Cmd: "who", Room: "#x", Members: []string{"a", "b"}, AwayMembers: []string{"b"}},
		{Type: TypeMsg, MID: 8, TS: "2026-11-25T10:00:00.000Z", Kind: KindAway, User: "bob", Away: "lunch", Text: "bob is away: lunch"},
		{Type: TypeAck, ID: "c-1", MID: 3},
		{Type: TypeError, ID: "c-2", Code: CodeFlood, Text: "too many messages", RetryMS: 250},
		{Type: TypePing, ID: "s1"},
		{Type: TypePong, ID: "p"},
	} {
		p, err := EncodeEvent(e)
		if err != nil {
			t.Fatalf("encode %s: %v", e.Type, err)
		}
		if strings.Contains(string(p), `\u003c`) {
			t.Errorf("HTML escaping wastes bytes: %s", p)
		}
		if !strings.HasPrefix(string(p), `{"t":`) {
			t.Errorf(`"t" should come first: %s`, p)
		}
		got, err := DecodeEvent(p)
		if err != nil {
			t.Fatalf("decode %s: %v", p, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, e)
		}
	}
	if _, err := DecodeEvent([]byte(`{"t":"msg","t":"ack"}`)); err == nil {
		t.Errorf("duplicate key accepted in an event")
	}
	if e, err := DecodeEvent([]byte(`{"t":"newtype","newfield":[1]}`)); err != nil || e.Type != "newtype" {
		t.Errorf("unknown event types must decode for the client to ignore: %v", err)
	}
}

func TestEncodeLimits(t *testing.T) {
	// The largest text, all quotes (each escaped to two bytes), still fits.
	e := &Event{Type: TypeMsg, MID: 1 << 52, TS: formatTime(time.Now()), Kind: KindMsg,
		Room: "#" + strings.Repeat("r", 32), From: strings.Repeat("u", 32), Text: strings.Repeat(`"`, MaxText), History: true}
	if _, err := EncodeEvent(e); err != nil {
		t.Fatalf("worst-case message does not fit a record: %v", err)
	}
	if _, err := EncodeRequest(&Request{Type: TypeMsg, Text: strings.Repeat("a", MaxPayload)}); err == nil {
		t.Fatalf("oversized request encoded")
	}
}

func TestSanitizeText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"tab\there", "tab here"},
		{"two\r\nlines", "two  lines"},
		{"bell\a nul\x00 del\x7f", "bell nul del"},
		{"\x1b[31mred\x1b[0m", "red"},
		{"\x1b[?1049h\x1b[2J\x1b[Hclear", "clear"},
		{"\x1b]0;title\x07after", "after"},
		{"\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"\x1bPdcs string\x1b\\x", "x"},
		{"\x1b]unterminated osc hides the rest", ""},
		{"\x1bcreset", "reset"},
		{"\x1b(Bcharset", "charset"},
		{"\x1b\x1b[1mdouble", "double"},
		{"esc at end\x1b", "esc at end"},
		{"\u009b31mc1 csi", "c1 csi"},
		{"\u009d0;t\u009cc1 osc", "c1 osc"},
		{"\u0085nel \u0080pad", "nel pad"},
		{"abc\u202edcba\u202c", "abcdcba"},
		{"\u2066isolate\u2069 \u2067x\u2068", "isolate x"},
		{"keep \u200e\u200f marks", "keep \u200e\u200f marks"},
		{"line\u2028sep\u2029par", "line sep par"},
		{"bad \xff\xfe utf8", "bad \ufffd\ufffd utf8"},
		{"emoji 👩‍💻 and accents é", "emoji 👩‍💻 and accents é"},
	} {
		if got := SanitizeText(tc.in); got != tc.want {
			t.Errorf("SanitizeText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := SanitizeMultiline("a\r\nb\x1b[1m\tc"); got != "a\nb c" {
		t.Errorf("SanitizeMultiline = %q", got)
	}
}

func TestNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"#general": true, "#a": true, "#0day": true, "#go-nuts.dev_x": true, "#" + strings.Repeat("a", 32): true,
		"#": false, "general": false, "#General": false, "#-x": false, "#.x": false, "#a b": false,
		"#" + strings.Repeat("a", 33): false, "#é": false, "##x": false,
	} {
		if ValidRoom(name) != ok {
			t.Errorf("ValidRoom(%q) = %v", name, !ok)
		}
	}
	for name, ok := range map[string]bool{
		"alice": true, "a": true, "bob.smith_2-x": true, strings.Repeat("a", 32): true,
		"": false, "Alice": false, "a b": false, strings.Repeat("a", 33): false, "al:ce": false,
	} {
		if ValidUser(name) != ok {
			t.Errorf("ValidUser(%q) = %v", name, !ok)
		}
	}
	if got := foldName("#\u212Aitchen"); got != "#\u212Aitchen" {
		t.Errorf("foldName must not map the Kelvin sign to k: %q", got)
	}
	if got := foldName("#MiXeD"); got != "#mixed" {
		t.Errorf("foldName = %q", got)
	}
}

func TestChunk(t *testing.T) {
	one := func(int) int { return 10 }
	for _, tc := range []struct {
		n, budget int
		want      [][2]int
	}{
		{0, 100, [][2]int{{0, 0}}},
		{5, 100, [][2]int{{0, 5}}},
		{25, 100, [][2]int{{0, 10}, {10, 20}, {20, 25}}},
		{3, 5, [][2]int{{0, 1}, {1, 2}, {2, 3}}}, // an item over budget still goes alone
	} {
		if got := chunk(tc.n, one, tc.budget); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("chunk(%d, %d) = %v, want %v", tc.n, tc.budget, got, tc.want)
		}
	}
}

// bareHub is a Hub without its loop, for the bookkeeping that runs on it.
func bareHub(cfg *Config) *Hub {
	return &Hub{cfg: cfg.resolve(), rooms: make(map[string]*room)}
}

func mids(evs []*Event) []uint64 {
	var out []uint64
	for _, e := range evs {
		out = append(out, e.MID)
	}
	return out
}

func TestHistoryKeepsNewest(t *testing.T) {
	h := bareHub(&Config{HistorySize: 3})
	r := newRoom("#a", time.Time{})
	h.rooms[r.name] = r
	if got := r.history.last(5); len(got) != 0 {
		t.Fatalf("empty history returned %d", len(got))
	}
	for i := 1; i <= 5; i++ {
		h.keep(r, &Event{MID: uint64(i)}, 100)
	}
	if got := mids(r.history.last(5)); !reflect.DeepEqual(got, []uint64{3, 4, 5}) {
		t.Errorf("last = %v", got)
	}
	if got := mids(r.history.last(1)); !reflect.DeepEqual(got, []uint64{5}) {
		t.Errorf("last(1) = %v", got)
	}
	if r.history.bytes != 300 || h.histBytes != 300 {
		t.Errorf("charged %d to the room and %d in all, want 300", r.history.bytes, h.histBytes)
	}

	none := bareHub(&Config{HistorySize: -1})
	r = newRoom("#a", time.Time{})
	none.keep(r, &Event{}, 100)
	if r.history.len() != 0 || none.histBytes != 0 {
		t.Errorf("a hub without history kept an event")
	}
}

// TestHistoryByteBudgets checks both budgets: a room's history stays
// within its own, dropping its oldest, and all rooms together within the
// server's, dropping the oldest anywhere (and a room that keeps nothing
// else with it).
func TestHistoryByteBudgets(t *testing.T) {
	h := bareHub(&Config{HistorySize: 100, HistoryRoomBytes: 1000, HistoryBytes: 2500})
	a, b, c := newRoom("#a", time.Time{}), newRoom("#b", time.Time{}), newRoom("#c", time.Time{})
	for _, r := range []*room{a, b, c} {
		h.rooms[r.name] = r
	}
	mid := uint64(0)
	keep := func(r *room, cost int) {
		mid++
		h.keep(r, &Event{MID: mid}, cost)
	}
	for range 5 {
		keep(a, 300) // mids 1-5: a keeps 3, 4, 5 (900 bytes)
	}
	if got := mids(a.history.last(10)); !reflect.DeepEqual(got, []uint64{3, 4, 5}) || a.history.bytes != 900 {
		t.Fatalf("room budget: kept %v (%d bytes), want [3 4 5] in 900", got, a.history.bytes)
	}
	keep(b, 800)  // 6: 1700 in all
	keep(c, 1000) // 7: 2700 > 2500, so a's 3 goes (2400)
	if got := mids(a.history.last(10)); !reflect.DeepEqual(got, []uint64{4, 5}) {
		t.Errorf("server budget: a keeps %v, want [4 5]", got)
	}
	if h.histBytes != 2400 {
		t.Errorf("charged %d in all, want 2400", h.histBytes)
	}
	keep(c, 1000) // 8: c's own budget drops 7: 600+800+1000 = 2400
	// 9: a's budget drops 4 and 5; then 1000+800+1000 = 2800 is over the
	// server's, and b's 6 is the oldest anywhere: it goes, and #b with it.
	keep(a, 1000)
	if got := mids(a.history.last(10)); !reflect.DeepEqual(got, []uint64{9}) {
		t.Errorf("a keeps %v, want [9]", got)
	}
	if b.history.len() != 0 || h.rooms["#b"] != nil {
		t.Errorf("#b kept %d events; an empty room with no history must go", b.history.len())
	}
	if h.histBytes != 2000 || h.histBytes != a.history.bytes+c.history.bytes {
		t.Errorf("charged %d in all, rooms %d+%d, want 2000", h.histBytes, a.history.bytes, c.history.bytes)
	}
	// The server-wide list holds exactly the rooms' events, oldest first.
	var all []uint64
	for x := h.histOldest; x != nil; x = x.newer {
		all = append(all, x.e.MID)
	}
	if !reflect.DeepEqual(all, []uint64{8, 9}) {
		t.Errorf("server-wide order %v, want [8 9]", all)
	}
	// An event over a budget is not kept at all.
	keep(a, 1001)
	if got := mids(a.history.last(10)); !reflect.DeepEqual(got, []uint64{9}) || h.histBytes != 2000 {
		t.Errorf("an event over the room budget changed the history: %v, %d bytes", got, h.histBytes)
	}
}
