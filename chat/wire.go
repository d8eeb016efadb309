package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// Version is the chat protocol version this package speaks (PROTOCOL.md §13).
const Version = 1

// Limits of the chat layer (PROTOCOL.md §13). Sizes are in bytes.
const (
	MaxPayload    = 16384 // JSON object in one APP record
	MaxText       = 4096  // UTF-8 text of one message, before sanitising
	MaxTopic      = 512   // room topic
	MaxReason     = 256   // part, quit, kick and ban reasons
	MaxMOTD       = 4096  // message of the day
	MaxID         = 64    // client-chosen request id
	MaxArgs       = 8     // arguments of one command
	MaxHelloRooms = 32    // rooms named in one hello
)

// Message types ("t"). Client to server: hello, msg, cmd, ping, pong.
// Server to client: welcome, msg, room, reply, ack, error, ping, pong.
const (
	TypeHello   = "hello"
	TypeMsg     = "msg"
	TypeCmd     = "cmd"
	TypePing    = "ping"
	TypePong    = "pong"
	TypeWelcome = "welcome"
	TypeRoom    = "room"
	TypeReply   = "reply"
	TypeAck     = "ack"
	TypeError   = "error"
)

// Kinds of msg events. A client shows an unknown kind like KindNotice.
const (
	KindMsg    = "msg"    // a room message
	KindMe     = "me"     // a room action (/me)
	KindDM     = "dm"     // a direct message
	KindNotice = "notice" // from the server; room is set when it concerns one room
	KindTopic  = "topic"  // a room's topic changed; text is the new topic
	KindJoin   = "join"   // from joined room
	KindPart   = "part"   // from left room; text is the reason
	KindQuit   = "quit"   // from's last session ended; text is the reason
	// KindAway answers a direct message to a user who is away, to the
	// sending session only: user is who is away, away their message.
	KindAway = "away"
)

// Error codes of error events. Clients must treat an unknown code like
// CodeBadRequest.
const (
	CodeBadRequest     = "bad_request"     // malformed request or arguments
	CodeBadUTF8        = "bad_utf8"        // the record is not valid UTF-8
	CodeTooLong        = "too_long"        // a text, topic, reason or MOTD over its limit
	CodeEmpty          = "empty"           // nothing left to send after sanitising
	CodeUnknownType    = "unknown_type"    // "t" not known to this server
	CodeUnknownCommand = "unknown_command" // "cmd" not known to this server
	CodeHelloRequired  = "hello_required"  // msg or cmd before hello
	CodeVersion        = "version"         // no common protocol version; the server closes
	CodeBadRoom        = "bad_room"        // not a valid room name
	CodeBadName        = "bad_name"        // not a valid user name
	CodeNoSuchRoom     = "no_such_room"    // the room does not exist
	CodeNotMember      = "not_member"      // the user is not in that room
	CodeOffline        = "offline"         // no session of that user is online
	CodeNotFound       = "not_found"       // nothing to unban or unmute
	CodeForbidden      = "forbidden"       // admin only, or not allowed on oneself
	CodeMuted          = "muted"           // the sender is muted
	CodeFlood          = "flood"           // too many requests; see retry_ms
	CodeRoomLimit      = "room_limit"      // too many rooms
	CodeUnsupported    = "unsupported"     // e.g. /nick: names are accounts
	CodeBanned         = "banned"          // login refused, or banned now; the server closes
	CodeKicked         = "kicked"          // an admin ended this session; the server closes
	CodeSessionLimit   = "session_limit"   // login refused: the account has too many sessions; the server closes
	CodeNotStored      = "not_stored"      // a message was delivered but could not be stored; mid names it
	CodeBadSignature   = "bad_signature"   // a signed msg whose signature fields are malformed or do not verify
)

// Error is a chat-layer error: what an error event carries.
type Error struct {
	Code string // one of the Code constants
	Text string // for people; lower case
}

func (e *Error) Error() string { return "chat: " + e.Text }

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Text: fmt.Sprintf(format, args...)}
}

// Request is one client-to-server message. Which fields a type uses is
// specified in PROTOCOL.md §13; the others stay empty.
type Request struct {
	Type   string   `json:"t"`
	ID     string   `json:"id,omitempty"`     // client-chosen, echoed in ack, error and reply
	V      int      `json:"v,omitempty"`      // hello: highest version the client speaks
	Client string   `json:"client,omitempty"` // hello: client name and version, for logs
	Rooms  []string `json:"rooms,omitempty"`  // hello: rooms to be in (rejoin after reconnect)
	Room   string   `json:"room,omitempty"`   // msg: target room; cmd: room it applies to
	To     string   `json:"to,omitempty"`     // msg: direct message recipient
	Kind   string   `json:"kind,omitempty"`   // msg: "msg" (default) or "me"
	Text   string   `json:"text,omitempty"`   // msg
	Cmd    string   `json:"cmd,omitempty"`    // cmd: command name
	Args   []string `json:"args,omitempty"`   // cmd: arguments
	// A signed msg carries its signature, the signer's counter and its
	// clock (PROTOCOL.md §13.16.3); the key is the session's, so the
	// request does not name it.
	Sig string `json:"sig,omitempty"` // msg: base64 of the Ed25519 signature
	Ctr uint64 `json:"ctr,omitempty"` // msg: the signer's counter
	Cts uint64 `json:"cts,omitempty"` // msg: the signer's clock, ms since 1970

	// badSigNumber is set by DecodeRequest when ctr or cts is a number
	// that is no unsigned integer (-1, 1.5, 1e3, or one over 2^64): a
	// malformed signature, answered bad_signature (§13.16.4).
	badSigNumber bool
}

// Event is one server-to-client message. Which fields a type uses is
// specified in PROTOCOL.md §13; the others stay empty.
type Event struct {
	Type string `json:"t"`
	ID   string `json:"id,omitempty"` // the request answered (ack, error, reply, pong) or a server ping's id

	V      int     `json:"v,omitempty"`      // welcome: version in use
	User   string  `json:"user,omitempty"`   // welcome: own name; whois reply, away msg: the user
	Admin  bool    `json:"admin,omitempty"`  // welcome, whois reply
	Away   string  `json:"away,omitempty"`   // welcome, whois, away and back replies, away msg: the away message
	MOTD   string  `json:"motd,omitempty"`   // welcome, motd reply
	Limits *Limits `json:"limits,omitempty"` // welcome

	MID     uint64 `json:"mid,omitempty"`     // msg: server-assigned id, increasing; ack: id of the message sent
	TS      string `json:"ts,omitempty"`      // msg: RFC 3339 UTC time with milliseconds
	Kind    string `json:"kind,omitempty"`    // msg
	Room    string `json:"room,omitempty"`    // msg, room, reply
	From    string `json:"from,omitempty"`    // msg: sender; empty for the server
	To      string `json:"to,omitempty"`      // msg (dm): recipient
	Text    string `json:"text,omitempty"`    // msg, reply (for people), error
	History bool   `json:"history,omitempty"` // msg: replayed from history
	// Queued marks a direct message kept for an offline recipient: the
	// sender's copy, and the recipient's at its next login (PROTOCOL.md
	// §13.15).
	Queued bool `json:"queued,omitempty"`
	// Key is the signing key of a signed msg event (with Sig, Ctr, Cts,
	// copied unchanged from the request, PROTOCOL.md §13.16.3), and in a
	// welcome the session's own signing key. Base64 of the 32 raw bytes.
	Key string `json:"key,omitempty"`
	Sig string `json:"sig,omitempty"` // msg: the sender's signature
	Ctr uint64 `json:"ctr,omitempty"` // msg: the sender's counter
	Cts uint64 `json:"cts,omitempty"` // msg: the sender's clock

	Cmd     string   `json:"cmd,omitempty"`     // reply: the command answered
	Topic   string   `json:"topic,omitempty"`   // room, topic reply
	Members []string `json:"members,omitempty"` // room, who reply
	// AwayMembers are the members of Members who are away (who reply).
	AwayMembers []string      `json:"away_members,omitempty"`
	Rooms       []RoomInfo    `json:"rooms,omitempty"`    // welcome, rooms reply
	Sessions    int           `json:"sessions,omitempty"` // whois reply
	Since       string        `json:"since,omitempty"`    // whois reply: online since
	Joined      []string      `json:"joined,omitempty"`   // whois reply
	Keys        []string      `json:"keys,omitempty"`     // whois reply: signing keys of the sessions online
	Bans        []Restriction `json:"bans,omitempty"`     // bans reply
	Mutes       []Restriction `json:"mutes,omitempty"`    // bans reply
	Commands    []CommandInfo `json:"commands,omitempty"` // help reply
	More        bool          `json:"more,omitempty"`     // room, reply: another part of this list follows

	Code    string `json:"code,omitempty"`     // error
	RetryMS int64  `json:"retry_ms,omitempty"` // error (flood): wait at least this long
}

// RoomInfo describes a room in welcome and rooms replies.
type RoomInfo struct {
	Room  string `json:"room"`
	Topic string `json:"topic,omitempty"`
	Count int    `json:"count"` // users in the room
}

// Restriction is a ban or a mute in a bans reply.
type Restriction struct {
	User   string `json:"user"`
	Until  string `json:"until,omitempty"` // RFC 3339; empty: until lifted
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Limits tells a client the server's limits, in its welcome.
type Limits struct {
	Text    int     `json:"text"`            // bytes per message text
	Topic   int     `json:"topic"`           // bytes per topic
	Burst   int     `json:"burst,omitempty"` // requests allowed at once; 0 with rate 0: no limit
	Rate    float64 `json:"rate,omitempty"`  // requests per second after the burst
	History int     `json:"history"`         // messages replayed per room on join
	Ping    int     `json:"ping"`            // seconds of silence before the server pings
}

// EncodeRequest returns the JSON form of r for one APP record.
func EncodeRequest(r *Request) ([]byte, error) { return marshal(r) }

// EncodeEvent returns the JSON form of e for one APP record.
func EncodeEvent(e *Event) ([]byte, error) { return marshal(e) }

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("chat: encode: %w", err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
	if len(b) > MaxPayload {
		return nil, errorf(CodeTooLong, "encoded message is %d bytes, over %d", len(b), MaxPayload)
	}
	return b, nil
}

// DecodeRequest parses one client-to-server message. Keys are matched
// exactly, unknown keys are ignored, a duplicate key is an error. It does
// not check the meaning of the fields (room names, text length): the hub
// does, so that it can answer with a precise error code.
//
// On error the returned *Error says what was wrong. When p was a
// well-formed JSON object with unique keys the Request is returned too,
// with ID set if the id was valid, so that the error can name the request
// it answers.
func DecodeRequest(p []byte) (*Request, error) {
	if len(p) > MaxPayload {
		return nil, errorf(CodeBadRequest, "message is %d bytes, over %d", len(p), MaxPayload)
	}
	if !utf8.Valid(p) {
		return nil, errorf(CodeBadUTF8, "message is not valid UTF-8")
	}
	r := new(Request)
	typeErr, err := decodeObject(p, func(key string, dec *json.Decoder) error {
		switch key {
		case "t":
			return dec.Decode(&r.Type)
		case "id":
			return dec.Decode(&r.ID)
		case "v":
			return dec.Decode(&r.V)
		case "client":
			return dec.Decode(&r.Client)
		case "rooms":
			return dec.Decode(&r.Rooms)
		case "room":
			return dec.Decode(&r.Room)
		case "to":
			return dec.Decode(&r.To)
		case "kind":
			return dec.Decode(&r.Kind)
		case "text":
			return dec.Decode(&r.Text)
		case "cmd":
			return dec.Decode(&r.Cmd)
		case "args":
			return dec.Decode(&r.Args)
		case "sig":
			return dec.Decode(&r.Sig)
		case "ctr":
			return decodeSigNumber(dec, &r.Ctr, &r.badSigNumber)
		case "cts":
			return decodeSigNumber(dec, &r.Cts, &r.badSigNumber)
		}
		return skipValue(dec)
	})
	if err != nil {
		return nil, err
	}
	if r.ID != "" && !validID(r.ID) {
		r.ID = ""
		return r, errorf(CodeBadRequest, "id must be 1 to %d printable ASCII characters", MaxID)
	}
	switch {
	case typeErr != nil:
		return r, typeErr
	case r.Type == "":
		return r, errorf(CodeBadRequest, `missing "t"`)
	case len(r.Args) > MaxArgs:
		return r, errorf(CodeBadRequest, "more than %d args", MaxArgs)
	case len(r.Rooms) > MaxHelloRooms:
		return r, errorf(CodeBadRequest, "more than %d rooms", MaxHelloRooms)
	}
	return r, nil
}

// decodeSigNumber reads a signed request's ctr or cts. A JSON number that
// is not an unsigned integer sets bad instead of failing the request, so
// that the hub answers bad_signature rather than bad_request for it.
func decodeSigNumber(dec *json.Decoder, dst *uint64, bad *bool) error {
	var n json.Number
	if err := dec.Decode(&n); err != nil {
		return err
	}
	v, err := strconv.ParseUint(n.String(), 10, 64)
	if err != nil {
		*bad = true
		return nil
	}
	*dst = v
	return nil
}

// DecodeEvent parses one server-to-client message with the same rules as
// DecodeRequest.
func DecodeEvent(p []byte) (*Event, error) {
	if len(p) > MaxPayload {
		return nil, errorf(CodeBadRequest, "message is %d bytes, over %d", len(p), MaxPayload)
	}
	if !utf8.Valid(p) {
		return nil, errorf(CodeBadUTF8, "message is not valid UTF-8")
	}
	e := new(Event)
	typeErr, err := decodeObject(p, func(key string, dec *json.Decoder) error {
		var dst any
		switch key {
		case "t":
			dst = &e.Type
		case "id":
			dst = &e.ID
		case "v":
			dst = &e.V
		case "user":
			dst = &e.User
		case "admin":
			dst = &e.Admin
		case "away":
			dst = &e.Away
		case "motd":
			dst = &e.MOTD
		case "limits":
			dst = &e.Limits
		case "mid":
			dst = &e.MID
		case "ts":
			dst = &e.TS
		case "kind":
			dst = &e.Kind
		case "room":
			dst = &e.Room
		case "from":
			dst = &e.From
		case "to":
			dst = &e.To
		case "text":
			dst = &e.Text
		case "history":
			dst = &e.History
		case "queued":
			dst = &e.Queued
		case "cmd":
			dst = &e.Cmd
		case "topic":
			dst = &e.Topic
		case "members":
			dst = &e.Members
		case "away_members":
			dst = &e.AwayMembers
		case "rooms":
			dst = &e.Rooms
		case "sessions":
			dst = &e.Sessions
		case "since":
			dst = &e.Since
		case "joined":
			dst = &e.Joined
		case "bans":
			dst = &e.Bans
		case "mutes":
			dst = &e.Mutes
		case "commands":
			dst = &e.Commands
		case "more":
			dst = &e.More
		case "code":
			dst = &e.Code
		case "retry_ms":
			dst = &e.RetryMS
		case "key":
			dst = &e.Key
		case "sig":
			dst = &e.Sig
		case "ctr":
			dst = &e.Ctr
		case "cts":
			dst = &e.Cts
		case "keys":
			dst = &e.Keys
		default:
			return skipValue(dec)
		}
		return dec.Decode(dst)
	})
	if err != nil {
		return nil, err
	}
	if typeErr != nil {
		return e, typeErr
	}
	if e.Type == "" {
		return e, errorf(CodeBadRequest, `missing "t"`)
	}
	return e, nil
}

// decodeObject walks the top-level members of the JSON object in p and
// calls field for each, which must consume exactly one value from dec. A
// value of the wrong type for a known key does not stop the walk, so that
// the other fields (the id) are still filled: it is returned as typeErr.
// Any other failure (not an object, bad JSON, a duplicate key, trailing
// data) is err.
func decodeObject(p []byte, field func(key string, dec *json.Decoder) error) (typeErr, err *Error) {
	dec := json.NewDecoder(bytes.NewReader(p))
	tok, terr := dec.Token()
	if d, ok := tok.(json.Delim); terr != nil || !ok || d != '{' {
		return nil, errorf(CodeBadRequest, "message is not a JSON object")
	}
	var seen map[string]struct{}
	for dec.More() {
		tok, terr := dec.Token()
		if terr != nil {
			return nil, asError(terr)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errorf(CodeBadRequest, "object key is not a string")
		}
		if _, dup := seen[key]; dup {
			return nil, errorf(CodeBadRequest, "duplicate key %q", truncateUTF8(key, 32))
		}
		if seen == nil {
			seen = make(map[string]struct{}, 8)
		}
		seen[key] = struct{}{}
		if ferr := field(key, dec); ferr != nil {
			var ute *json.UnmarshalTypeError
			if !errors.As(ferr, &ute) {
				return nil, asError(ferr)
			}
			if typeErr == nil {
				typeErr = errorf(CodeBadRequest, "key %q: %s is the wrong type", key, ute.Value)
			}
		}
	}
	if _, terr := dec.Token(); terr != nil { // the closing '}'
		return nil, asError(terr)
	}
	if _, terr := dec.Token(); terr != io.EOF {
		return nil, errorf(CodeBadRequest, "data after the JSON object")
	}
	return typeErr, nil
}

func skipValue(dec *json.Decoder) error {
	var skip json.RawMessage
	return dec.Decode(&skip)
}

// asError turns any decoding failure into an *Error without echoing the
// input back.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return errorf(CodeBadRequest, "bad JSON at byte %d", se.Offset)
	}
	return errorf(CodeBadRequest, "bad JSON")
}

// validID reports whether id is 1 to MaxID printable ASCII characters
// other than space.
func validID(id string) bool {
	if len(id) == 0 || len(id) > MaxID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}
