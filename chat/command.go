package chat

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CommandInfo describes one slash command, for /help and completion. It is
// what a help reply carries (PROTOCOL.md §13.9).
type CommandInfo struct {
	Name    string   `json:"name"`
	Usage   string   `json:"usage"`
	Help    string   `json:"help"`
	Admin   bool     `json:"admin,omitempty"`   // only admins may use it
	Aliases []string `json:"aliases,omitempty"` // other names it answers to
	// Local marks a command the client carries out itself: it never
	// reaches a server, and a server's help reply never lists it.
	Local bool `json:"-"`
}

// command is one slash command: everything the line parser, the hub and
// /help know about it. commandTable holds one per command; nothing else
// in this package lists commands, so they cannot drift apart.
type command struct {
	name    string
	aliases []string
	usage   string // "/name ARGS", as /help shows it
	help    string
	admin   bool
	local   bool // carried out by the client; the hub does not serve it

	// parse turns the rest of a typed line (after "/name") into the
	// request, given the room the line was typed in. It returns errUsage
	// when the words do not fit usage.
	parse func(c *command, rest, room string) (*Request, error)

	// The hub's side, unused for local commands: how many args a request
	// may carry, whether req.Room must name a room, and what it does.
	minArgs, maxArgs int
	inRoom           bool
	run              func(h *Hub, s *session, req *Request)
}

// info is c as Commands returns it: a copy callers may change.
func (c *command) info() CommandInfo {
	return CommandInfo{Name: c.name, Usage: c.usage, Help: c.help, Admin: c.admin,
		Aliases: slices.Clone(c.aliases), Local: c.local}
}

// commandTable is filled in init, because the handlers it names refer back
// to it (/help lists it).
var (
	commandTable  []*command
	commandByName map[string]*command // names and aliases, derived from commandTable
)

func init() {
	commandTable = []*command{
		{name: "join", aliases: []string{"j"}, usage: "/join ROOM", help: "join a room; it is created if new",
			parse: parseJoin, inRoom: true, run: (*Hub).cmdJoin},
		{name: "part", aliases: []string{"leave"}, usage: "/part [ROOM] [REASON]", help: "leave a room, by default the current one",
			parse: parseRoomAndText, maxArgs: 1, inRoom: true, run: (*Hub).cmdPart},
		{name: "msg", aliases: []string{"query"}, usage: "/msg NAME TEXT", help: "send a direct message to every session of NAME",
			parse: parseMsg, minArgs: 2, maxArgs: 2, run: (*Hub).cmdMsg},
		{name: "me", usage: "/me TEXT", help: "send an action to the current room",
			parse: parseMe, minArgs: 1, maxArgs: 1, inRoom: true, run: (*Hub).cmdMe},
		{name: "rooms", aliases: []string{"list"}, usage: "/rooms", help: "list the rooms with their member counts",
			parse: parseNoArgs, run: (*Hub).cmdRooms},
		{name: "topic", usage: "/topic [ROOM] [TEXT]", help: "show a room's topic, or set it",
			parse: parseRoomAndText, maxArgs: 1, inRoom: true, run: (*Hub).cmdTopic},
		{name: "who", aliases: []string{"names"}, usage: "/who [ROOM]", help: "list the members of a room",
			parse: parseRoomOnly, inRoom: true, run: (*Hub).cmdWho},
		{name: "whois", usage: "/whois NAME", help: "show whether NAME is online and in which rooms",
			parse: parseName, minArgs: 1, maxArgs: 1, run: (*Hub).cmdWhois},
		{name: "away", usage: "/away [TEXT]", help: "mark yourself away; TEXT is told to whoever sends you a direct message",
			parse: parseOptionalText, maxArgs: 1, run: (*Hub).cmdAway},
		{name: "back", usage: "/back", help: "you are no longer away",
			parse: parseNoArgs, run: (*Hub).cmdBack},
		{name: "nick", usage: "/nick", help: "names are account names and cannot be changed",
			parse: parseOptionalText, maxArgs: 1, run: (*Hub).cmdNick},
		{name: "motd", usage: "/motd [TEXT]", help: "show the message of the day; admins can set it",
			parse: parseOptionalText, maxArgs: 1, run: (*Hub).cmdMOTD},
		{name: "help", usage: "/help [COMMAND]", help: "list the commands, or explain one",
			parse: parseOptionalText, maxArgs: 1, run: (*Hub).cmdHelp},
		{name: "quit", aliases: []string{"exit"}, usage: "/quit [REASON]", help: "end this session",
			parse: parseOptionalText, maxArgs: 1, run: (*Hub).cmdQuit},
		{name: "history", usage: "/history [ROOM|NAME] [before ID] [N]", help: "show N (50) messages of a room, or of your direct messages with NAME: the newest, or those before message ID",
			parse: parseHistory, maxArgs: 3, run: (*Hub).cmdHistory},
		{name: "search", usage: "/search TEXT [#ROOM]", help: "find messages with every word of TEXT in your rooms, or in ROOM",
			parse: parseSearch, minArgs: 1, maxArgs: 1, run: (*Hub).cmdSearch},
		{name: "kick", usage: "/kick NAME [REASON]", help: "disconnect every session of NAME", admin: true,
			parse: parseNameAndText, minArgs: 1, maxArgs: 2, run: (*Hub).cmdKick},
		{name: "ban", usage: "/ban NAME [DURATION] [REASON]", help: "disconnect NAME and refuse logins for DURATION (e.g. 30m, 2h, 7d), or until /unban", admin: true,
			parse: parseBan, minArgs: 1, maxArgs: 3, run: (*Hub).cmdBan},
		{name: "unban", usage: "/unban NAME", help: "lift a ban", admin: true,
			parse: parseName, minArgs: 1, maxArgs: 1, run: (*Hub).cmdUnban},
		{name: "mute", usage: "/mute NAME [DURATION]", help: "stop NAME sending messages, direct messages and topics in every room, for DURATION or until /unmute", admin: true,
			parse: parseMute, minArgs: 1, maxArgs: 2, run: (*Hub).cmdMute},
		{name: "unmute", usage: "/unmute NAME", help: "lift a mute", admin: true,
			parse: parseName, minArgs: 1, maxArgs: 1, run: (*Hub).cmdUnmute},
		{name: "bans", usage: "/bans", help: "list bans and mutes", admin: true,
			parse: parseNoArgs, run: (*Hub).cmdBans},

		// Carried out by the reference client itself.
		{name: "fingerprint", usage: "/fingerprint", help: "show the server's host key fingerprint", local: true,
			parse: parseNoArgs},
		{name: "reply", usage: "/reply TEXT", help: "send a direct message to whoever sent you the last one", local: true,
			parse: parseText},
		{name: "ignore", usage: "/ignore [NAME]", help: "hide the messages and direct messages of NAME; without NAME, list who is ignored", local: true,
			parse: parseOptionalName},
		{name: "unignore", usage: "/unignore NAME", help: "show the messages of NAME again", local: true,
			parse: parseName},
		{name: "forget", usage: "/forget NAME", help: "remove the signing keys pinned for NAME from known_users (and take back a no given at the prompt), so that the next one is pinned or asked about anew", local: true,
			parse: parseName},
	}
	commandByName = make(map[string]*command)
	for _, c := range commandTable {
		for _, n := range append([]string{c.name}, c.aliases...) {
			if commandByName[n] != nil {
				panic("chat: command name " + n + " is used twice")
			}
			commandByName[n] = c
		}
	}
}

// lookupCommand returns the command called name or one of its aliases,
// ignoring case and a leading "/"; nil if there is none.
func lookupCommand(name string) *command {
	return commandByName[foldName(strings.TrimPrefix(name, "/"))]
}

// Commands returns the commands a server serves, in /help order.
func Commands() []CommandInfo { return infos(false) }

// ClientCommands returns the commands the client carries out itself (they
// never reach the server), in /help order. A client adds them to what it
// shows for /help and to its completion list; see [HelpText].
func ClientCommands() []CommandInfo { return infos(true) }

func infos(local bool) []CommandInfo {
	var out []CommandInfo
	for _, c := range commandTable {
		if c.local == local {
			out = append(out, c.info())
		}
	}
	return out
}

// LookupCommand returns the command called name, resolving aliases and
// ignoring case and a leading "/". It knows the client's own commands too
// (CommandInfo.Local).
func LookupCommand(name string) (CommandInfo, bool) {
	if c := lookupCommand(name); c != nil {
		return c.info(), true
	}
	return CommandInfo{}, false
}

// HelpText is the text a client shows for e. For a help reply that lists
// every command (more than one) it is the list the server sent followed by
// the client's own commands (ClientCommands), one per line as the server
// formats them; for any other event it is e.Text. A client shows
// HelpText(e) in place of e.Text for reply events.
func HelpText(e *Event) string {
	if e.Type != TypeReply || e.Cmd != "help" || len(e.Commands) < 2 {
		return e.Text
	}
	cmds := slices.DeleteFunc(slices.Clone(e.Commands), func(c CommandInfo) bool {
		lc := lookupCommand(c.Name)
		return lc != nil && lc.local
	})
	return formatHelp(append(cmds, ClientCommands()...))
}

// formatHelp writes one line per command: usage, then what it does.
func formatHelp(cmds []CommandInfo) string {
	var text strings.Builder
	for i, c := range cmds {
		if i > 0 {
			text.WriteByte('\n')
		}
		fmt.Fprintf(&text, "%-32s %s", SanitizeText(c.Usage), SanitizeText(c.Help))
		if len(c.Aliases) > 0 {
			fmt.Fprintf(&text, " (also /%s)", SanitizeText(strings.Join(c.Aliases, " /")))
		}
	}
	return text.String()
}

// UsageError is why ParseLine could not turn a typed line into a request.
// Nothing was sent: the client shows it as an error of its own. Its text
// reads like a server's error text, without a package prefix.
type UsageError struct {
	Code  string // the code a server would have answered with (CodeBadRequest, CodeBadRoom, ...)
	Text  string // for people, lower case
	Usage string // the usage line of the command typed, if it was a known one
}

func (e *UsageError) Error() string { return e.Text }

// ErrNoRoom is returned by ParseLine for room text or a room command typed
// outside any room.
var ErrNoRoom = &UsageError{Code: CodeBadRequest, Text: "not in a room: /join one first"}

// errUsage is returned by a command's parse function for words that do not
// fit its usage; ParseLine turns it into a *UsageError naming the usage.
var errUsage = errors.New("usage")

// ParseLine turns one line typed by a user into the request it stands for;
// room is the room the line was typed in ("" when none). A line without a
// leading "/" is a message to room; "//" sends a line starting with "/".
// Command names are case-insensitive; names and rooms are lower-cased;
// "/join foo" means "#foo". A command this package does not know is passed
// on with its words as args, so that a newer server can answer it. A
// client's own command (CommandInfo.Local) becomes a cmd request for the
// client to carry out, not to send.
//
// ParseLine does not set the request ID and checks only what it must to
// split the line; the server checks the rest. Every error it returns is a
// *UsageError.
func ParseLine(line, room string) (*Request, error) {
	line = strings.TrimRight(line, "\r\n")
	if strings.TrimSpace(line) == "" {
		return nil, &UsageError{Code: CodeEmpty, Text: "nothing to send"}
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
	if name == "" {
		return nil, &UsageError{Code: CodeUnknownCommand, Text: "no command after /"}
	}
	c := lookupCommand(name)
	if c == nil {
		args := strings.Fields(rest)
		if len(args) > MaxArgs {
			args = append(args[:MaxArgs-1], strings.Join(args[MaxArgs-1:], " "))
		}
		return &Request{Type: TypeCmd, Cmd: foldName(name), Room: room, Args: args}, nil
	}
	req, err := c.parse(c, rest, room)
	var ue *UsageError
	var ce *Error
	switch {
	case err == nil:
		return req, nil
	case errors.Is(err, errUsage):
		return nil, &UsageError{Code: CodeBadRequest, Text: "usage: " + c.usage, Usage: c.usage}
	case errors.As(err, &ue):
		return nil, ue
	case errors.As(err, &ce):
		return nil, &UsageError{Code: ce.Code, Text: ce.Text, Usage: c.usage}
	}
	return nil, &UsageError{Code: CodeBadRequest, Text: err.Error(), Usage: c.usage}
}

// The parse functions of commandTable, one per shape of arguments.

// parseJoin: /join ROOM, the # optional.
func parseJoin(c *command, rest, _ string) (*Request, error) {
	target, extra := cutWord(rest)
	if target == "" || extra != "" {
		return nil, errUsage
	}
	if !strings.HasPrefix(target, "#") {
		target = "#" + target
	}
	target = foldName(target)
	if !ValidRoom(target) {
		return nil, badRoom(target)
	}
	return &Request{Type: TypeCmd, Cmd: c.name, Room: target}, nil
}

// roomWord takes an optional first word starting with "#" as the room,
// else the current one.
func roomWord(rest, room string) (target, after string, err error) {
	target, after = room, rest
	if w, a := cutWord(rest); strings.HasPrefix(w, "#") {
		target, after = foldName(w), a
		if !ValidRoom(target) {
			return "", "", badRoom(target)
		}
	}
	if target == "" {
		return "", "", ErrNoRoom
	}
	return target, after, nil
}

// parseRoomAndText: /part [ROOM] [REASON], /topic [ROOM] [TEXT].
func parseRoomAndText(c *command, rest, room string) (*Request, error) {
	target, text, err := roomWord(rest, room)
	if err != nil {
		return nil, err
	}
	return &Request{Type: TypeCmd, Cmd: c.name, Room: target, Args: trimArgs(text)}, nil
}

// parseRoomOnly: /who [ROOM].
func parseRoomOnly(c *command, rest, room string) (*Request, error) {
	target, extra, err := roomWord(rest, room)
	if err != nil {
		return nil, err
	}
	if extra != "" {
		return nil, errUsage
	}
	return &Request{Type: TypeCmd, Cmd: c.name, Room: target}, nil
}

// parseMsg: /msg NAME TEXT becomes a direct message.
func parseMsg(_ *command, rest, _ string) (*Request, error) {
	to, text := cutWord(rest)
	if to == "" || strings.TrimSpace(text) == "" {
		return nil, errUsage
	}
	return &Request{Type: TypeMsg, To: foldName(to), Text: text}, nil
}

// parseMe: /me TEXT becomes an action in the current room.
func parseMe(_ *command, rest, room string) (*Request, error) {
	if strings.TrimSpace(rest) == "" {
		return nil, errUsage
	}
	if room == "" {
		return nil, ErrNoRoom
	}
	return &Request{Type: TypeMsg, Room: room, Kind: KindMe, Text: rest}, nil
}

// parseNoArgs: /rooms, /bans.
func parseNoArgs(c *command, rest, _ string) (*Request, error) {
	if rest != "" {
		return nil, errUsage
	}
	return &Request{Type: TypeCmd, Cmd: c.name}, nil
}

// parseName: /whois NAME, /unban NAME.
func parseName(c *command, rest, _ string) (*Request, error) {
	who, extra := cutWord(rest)
	if who == "" || extra != "" {
		return nil, errUsage
	}
	return &Request{Type: TypeCmd, Cmd: c.name, Args: []string{foldName(who)}}, nil
}

// parseOptionalName: /ignore [NAME].
func parseOptionalName(c *command, rest, room string) (*Request, error) {
	if strings.TrimSpace(rest) == "" {
		return &Request{Type: TypeCmd, Cmd: c.name}, nil
	}
	return parseName(c, rest, room)
}

// parseText: /reply TEXT, the text kept as typed.
func parseText(c *command, rest, _ string) (*Request, error) {
	if strings.TrimSpace(rest) == "" {
		return nil, errUsage
	}
	return &Request{Type: TypeCmd, Cmd: c.name, Args: []string{rest}}, nil
}

// parseNameAndText: /kick NAME [REASON].
func parseNameAndText(c *command, rest, _ string) (*Request, error) {
	who, text := cutWord(rest)
	if who == "" {
		return nil, errUsage
	}
	return &Request{Type: TypeCmd, Cmd: c.name, Args: trimArgs(foldName(who), text)}, nil
}

// nameAndDuration splits NAME [DURATION] [REST]: the second word is the
// duration only if it parses as one.
func nameAndDuration(rest string) (who, dur, after string, err error) {
	who, after = cutWord(rest)
	if who == "" {
		return "", "", "", errUsage
	}
	if w, a := cutWord(after); w != "" {
		if _, err := ParseDuration(w); err == nil {
			dur, after = w, a
		}
	}
	return foldName(who), dur, after, nil
}

// parseBan: /ban NAME [DURATION] [REASON].
func parseBan(c *command, rest, _ string) (*Request, error) {
	who, dur, reason, err := nameAndDuration(rest)
	if err != nil {
		return nil, err
	}
	return &Request{Type: TypeCmd, Cmd: c.name, Args: trimArgs(who, dur, reason)}, nil
}

// parseMute: /mute NAME [DURATION].
func parseMute(c *command, rest, _ string) (*Request, error) {
	who, dur, extra, err := nameAndDuration(rest)
	if err != nil {
		return nil, err
	}
	if extra != "" {
		return nil, errUsage
	}
	return &Request{Type: TypeCmd, Cmd: c.name, Args: trimArgs(who, dur)}, nil
}

// parseOptionalText: /quit [REASON], /motd [TEXT] and the like: the rest
// of the line, if any, is one argument.
func parseOptionalText(c *command, rest, _ string) (*Request, error) {
	return &Request{Type: TypeCmd, Cmd: c.name, Args: trimArgs(rest)}, nil
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
// position (a ban with a reason but no duration). None left is nil.
func trimArgs(args ...string) []string {
	for len(args) > 0 && args[len(args)-1] == "" {
		args = args[:len(args)-1]
	}
	if len(args) == 0 {
		return nil
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
