package client

import (
	"crypto/ed25519"
	"fmt"

	"securechat/chat"
	"securechat/msgsig"
)

// whoisKeyLines are the lines the client adds to a /whois reply: each
// signing key the server published for the user, and what known_users
// says of it (PROTOCOL.md §13.16.6). The server's word only claims a key;
// this is where a person compares the pinned fingerprint out of band.
// Nothing is pinned here: only a verified message pins.
// self and selfKey are this session's user and signing key: the user's
// own keys are compared with that key, never with the file.
func whoisKeyLines(cfg *Config, self string, selfKey ed25519.PublicKey, ev *chat.Event) []string {
	if cfg.KnownUsers == "" || ev.Type != chat.TypeReply || ev.Cmd != "whois" || !chat.ValidUser(ev.User) {
		return nil
	}
	if ev.User == self {
		var out []string
		for _, b64 := range ev.Keys {
			key, err := msgsig.DecodeKey(b64)
			switch {
			case err != nil:
				out = append(out, "your signing key as the server sent it is not a key")
			case selfKey != nil && key.Equal(selfKey):
				out = append(out, fmt.Sprintf("you sign with %s: this session's key", msgsig.Fingerprint(key)))
			default:
				out = append(out, fmt.Sprintf("a session of yours signs with %s: not this session's key", msgsig.Fingerprint(key)))
			}
		}
		return out
	}
	who := msgsig.UserAt(ev.User, cfg.Addr)
	known, err := msgsig.LoadKnownUsers(cfg.KnownUsers)
	if err != nil {
		return []string{fmt.Sprintf("%s's signing keys cannot be checked: %v", ev.User, err)}
	}
	pins := known.Lookup(who)
	var out []string
	for _, b64 := range ev.Keys {
		key, err := msgsig.DecodeKey(b64)
		if err != nil {
			out = append(out, fmt.Sprintf("%s's signing key as the server sent it is not a key", ev.User))
			continue
		}
		fp := msgsig.Fingerprint(key)
		switch pin, line := known.Check(who, key); pin {
		case msgsig.PinMatch:
			out = append(out, fmt.Sprintf("%s signs with %s: pinned, matches %s:%d", ev.User, fp, known.File, line.Line))
		case msgsig.PinRevoked:
			out = append(out, fmt.Sprintf("%s signs with %s: REVOKED in %s:%d", ev.User, fp, known.File, line.Line))
		case msgsig.PinChanged:
			out = append(out, fmt.Sprintf("%s signs with %s: DIFFERS from the key pinned in %s:%d (%s)",
				ev.User, fp, known.File, line.Line, msgsig.Fingerprint(line.Key)))
		default:
			out = append(out, fmt.Sprintf("%s signs with %s: not pinned in %s", ev.User, fp, known.File))
		}
	}
	if len(ev.Keys) == 0 {
		switch {
		case len(pins) > 0:
			for _, p := range pins {
				out = append(out, fmt.Sprintf("%s has no session signing now; %s:%d pins %s", ev.User, known.File, p.Line, msgsig.Fingerprint(p.Key)))
			}
		default:
			out = append(out, fmt.Sprintf("%s has no session signing now, and no key pinned", ev.User))
		}
	}
	return out
}
