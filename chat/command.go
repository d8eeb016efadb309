package chat

import (
	"strconv"
	"strings"
	"time"
)

// CommandInfo describes one slash command, for /help and completion.
type CommandInfo struct {
	Name  string `json:"name"`
	Usage string `json:"usage"`
	Help  string `json:"help"`
	Admin bool   `json:"admin,omitempty"` // only admins may use it
}

// commandTable is the one list of commands: the parser, the hub and /help
// all read it. Aliases map other spellings onto these names.
var commandTable = []CommandInfo{
	{Name: "join", Usage: "/join ROOM", Help: "join a room; it is created if new"},
	{Name: "part", Usage: "/part [ROOM] [REASON]", Help: "leave a room, by default the current one"},
	{Name: "msg", Usage: "/msg NAME TEXT", Help: "send a direct message to every session of NAME"},
	{Name: "me", Usage: "/me TEXT", Help: "send an action to the current room"},
	{Name: "rooms", Usage: "/rooms", Help: "list the rooms with their member counts"},
	{Name: "topic", Usage: "/topic [ROOM] [TEXT]", Help: "show a room's topic, or set it"},
	{Name: "who", Usage: "/who [ROOM]", Help: "list the members of a room"},
	{Name: "whois", Usage: "/whois NAME", Help: "show whether NAME is online and in which rooms"},
	{Name: "nick", Usage: "/nick", Help: "names are account names and cannot be changed"},
	{Name: "motd", Usage: "/motd [TEXT]", Help: "show the message of the day; admins can set it"},
	{Name: "help", Usage: "/help [COMMAND]", Help: "list the commands, or explain one"},
	{Name: "quit", Usage: "/quit [REASON]", Help: "end this session"},
	{Name: "kick", Usage: "/kick NAME [REASON]", Help: "disconnect every session of NAME", Admin: true},
	{Name: "ban", Usage: "/ban NAME [DURATION] [REASON]", Help: "disconnect NAME and refuse logins for DURATION (e.g. 30m, 2h, 7d), or until /unban", Admin: true},
	{Name: "unban", Usage: "/unban NAME", Help: "lift a ban", Admin: true},
	{Name: "mute", Usage: "/mute NAME [DURATION]", Help: "stop NAME sending messages, direct messages and topics in every room, for DURATION or until /unmute", Admin: true},
	{Name: "unmute", Usage: "/unmute NAME", Help: "lift a mute", Admin: true},
	{Name: "bans", Usage: "/bans", Help: "list bans and mutes", Admin: true},
}

var commandAliases = map[string]string{
	"j":     "join",
	"leave": "part",
	"query": "msg",
	"list":  "rooms",
	"names": "who",
	"exit":  "quit",
}

// Commands returns the slash commands in /help order.
func Commands() []CommandInfo { return append([]CommandInfo(nil), commandTable...) }

// LookupCommand returns the command called name, resolving aliases and
// ignoring case and a leading "/".
func LookupCommand(name string) (CommandInfo, bool) {
	name = foldName(strings.TrimPrefix(name, "/"))
	if a, ok := commandAliases[name]; ok {
		name = a
	}
	for _, c := range commandTable {
		if c.Name == name {
			return c, true
		}
	}
	return CommandInfo{}, false
}

// ErrNoRoom is returned by ParseLine for room text or a room command typed
// outside any room.
var ErrNoRoom = &Error{Code: CodeBadRequest, Text: "not in a room: /join one first"}

// ParseLine turns one line typed by a user into the request it stands for;
// room is the room the line was typed in ("" when none). A line without a
// leading "/" is a message to room; "//" sends a line starting with "/".
// Command names are case-insensitive; names and rooms are lower-cased;
// "/join foo" means "#foo". A command this package does not know is passed
// on with its words as args, so that a newer server can answer it.
//
// ParseLine does not set the request ID and checks only what it must to
// split the line; the server checks the rest.
func ParseLine(line, room string) (*Request, error) {
	line = strings.TrimRight(line, "\r\n")
	if strings.TrimSpace(line) == "" {
		return nil, errorf(CodeEmpty, "nothing to send")
	}
	if !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
		if strings.HasPrefix(line, "//") {
			line = line[1:]
		}
		if room == "" {
			return nil, ErrNoRoom
		}
		return &Request{Type: TypeMsg, Room: room, Text: line}, nil
	}
	name, rest := cutWord(line[1:])
	name = foldName(name)
	if a, ok := commandAliases[name]; ok {
		name = a
	}
	usage := func() error {
		c, _ := LookupCommand(name)
		return errorf(CodeBadRequest, "usage: %s", c.Usage)
	}
	switch name {
	case "msg":
		to, text := cutWord(rest)
		if to == "" || strings.TrimSpace(text) == "" {
			return nil, usage()
		}
		return &Request{Type: TypeMsg, To: foldName(to), Text: text}, nil
	case "me":
		if strings.TrimSpace(rest) == "" {
			return nil, usage()
		}
		if room == "" {
			return nil, ErrNoRoom
		}
		return &Request{Type: TypeMsg, Room: room, Kind: KindMe, Text: rest}, nil
	case "join":
		target, extra := cutWord(rest)
		if target == "" || extra != "" {
			return nil, usage()
		}
		if !strings.HasPrefix(target, "#") {
			target = "#" + target
		}
		target = foldName(target)
		if !ValidRoom(target) {
			return nil, badRoom(target)
		}
		return &Request{Type: TypeCmd, Cmd: name, Room: target}, nil
	case "part", "topic", "who":
		target := room
		if w, after := cutWord(rest); strings.HasPrefix(w, "#") {
			target, rest = foldName(w), after
			if !ValidRoom(target) {
				return nil, badRoom(target)
			}
		}
		if target == "" {
			return nil, ErrNoRoom
		}
		r := &Request{Type: TypeCmd, Cmd: name, Room: target}
		if name == "who" {
			if rest != "" {
				return nil, usage()
			}
		} else if rest != "" {
			r.Args = []string{rest}
		}
		return r, nil
	case "rooms", "bans":
		if rest != "" {
			return nil, usage()
		}
		return &Request{Type: TypeCmd, Cmd: name}, nil
	case "whois", "unban", "unmute":
		who, extra := cutWord(rest)
		if who == "" || extra != "" {
			return nil, usage()
		}
		return &Request{Type: TypeCmd, Cmd: name, Args: []string{foldName(who)}}, nil
	case "kick":
		who, reason := cutWord(rest)
		if who == "" {
			return nil, usage()
		}
		return &Request{Type: TypeCmd, Cmd: name, Args: trimArgs(foldName(who), reason)}, nil
	case "ban", "mute":
		who, after := cutWord(rest)
		if who == "" {
			return nil, usage()
		}
		dur := ""
		if w, after2 := cutWord(after); w != "" {
			if _, err := ParseDuration(w); err == nil {
				dur, after = w, after2
			}
		}
		if name == "mute" {
			if after != "" {
				return nil, usage()
			}
			return &Request{Type: TypeCmd, Cmd: name, Args: trimArgs(foldName(who), dur)}, nil
		}
		return &Request{Type: TypeCmd, Cmd: name, Args: trimArgs(foldName(who), dur, after)}, nil
	case "nick", "motd", "help", "quit":
		var args []string
		if rest != "" {
			args = []string{rest}
		}
		return &Request{Type: TypeCmd, Cmd: name, Args: args}, nil
	}
	if name == "" {
		return nil, errorf(CodeUnknownCommand, "no command after /")
	}
	args := strings.Fields(rest)
	if len(args) > MaxArgs {
		args = append(args[:MaxArgs-1], strings.Join(args[MaxArgs-1:], " "))
	}
	return &Request{Type: TypeCmd, Cmd: name, Room: room, Args: args}, nil
}

func badRoom(name string) *Error {
	return errorf(CodeBadRoom, "%q is not a room name: # and 1 to 32 of a-z 0-9 _ . - (first a letter or digit)", name)
}

// cutWord splits s at the first run of spaces: the first word, and the rest
// with its leading spaces removed. The rest keeps its inner spacing.
func cutWord(s string) (word, rest string) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t")
}

// trimArgs drops empty trailing arguments; inner empty ones keep their
// position (a ban with a reason but no duration).
func trimArgs(args ...string) []string {
	for len(args) > 0 && args[len(args)-1] == "" {
		args = args[:len(args)-1]
	}
	return args
}

// maxDuration bounds ban and mute durations so that time arithmetic cannot
// overflow; a longer restriction is written without a duration.
const maxDuration = 10 * 365 * 24 * time.Hour

// ParseDuration parses a ban or mute duration: one or more groups of a
// decimal number and a unit s, m, h, d (24 h) or w (7 d), as in "90s",
// "1h30m" or "7d". The total must be positive and at most ten years.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	errBad := errorf(CodeBadRequest, "%q is not a duration such as 30m, 2h or 7d", orig)
	errLong := errorf(CodeBadRequest, "%q is longer than ten years: leave the duration out", orig)
	if s == "" {
		return 0, errBad
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) || i > 9 {
			return 0, errBad
		}
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, errBad
		}
		var unit time.Duration
		switch s[i] {
		case 's':
			unit = time.Second
		case 'm':
			unit = time.Minute
		case 'h':
			unit = time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		default:
			return 0, errBad
		}
		if time.Duration(n) > maxDuration/unit {
			return 0, errLong
		}
		total += time.Duration(n) * unit
		if total > maxDuration {
			return 0, errLong
		}
		s = s[i+1:]
	}
	if total <= 0 {
		return 0, errBad
	}
	return total, nil
}
