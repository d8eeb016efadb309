package client

import (
	"errors"
	"fmt"
	"io/fs"

	"securechat/msgsig"
)

// forget carries out /forget NAME: it removes every key known_users pins
// for NAME on this server (PROTOCOL.md §13.16.6), the way to accept a key
// that really changed, and the answers given at the prompt about NAME's
// keys this run, the way to be asked again after a "no". @revoked lines
// stay. It returns the confirmation to show, or an error for the user.
func forgetUser(cfg *Config, sc *sigChecker, name string) (string, error) {
	if cfg.KnownUsers == "" {
		return "", errors.New("no known_users file: this client does not check signatures")
	}
	who := msgsig.UserAt(name, cfg.Addr)
	removed, err := msgsig.RemoveKnownUser(cfg.KnownUsers, who)
	notPinned := errors.Is(err, fs.ErrNotExist) || (err == nil && len(removed) == 0)
	if err != nil && !notPinned {
		return "", err
	}
	// A key refused at the prompt this run is not pinned; forgetting the
	// answer is how to be asked again.
	refused := sc.reconsider(who)
	if notPinned {
		if !refused {
			return "", fmt.Errorf("%s has no pinned key in %s", name, cfg.KnownUsers)
		}
		return fmt.Sprintf("forgot that you refused %s's key; you will be asked again at their next signed message", name), nil
	}
	text := fmt.Sprintf("forgot %s's signing key", name)
	if len(removed) > 1 {
		text += "s"
	}
	for i, r := range removed {
		sep := ", "
		if i == 0 {
			sep = " "
		}
		fp := "(a line that did not parse)"
		if r.Key != nil {
			fp = msgsig.Fingerprint(r.Key)
		}
		text += fmt.Sprintf("%s%s (%s:%d)", sep, fp, cfg.KnownUsers, r.Line)
	}
	switch cfg.UserKeyPolicy {
	case msgsig.PolicyAcceptNew:
		text += "; the next message signed by " + name + " pins its key"
	case msgsig.PolicyAsk:
		text += "; you will be asked about the next key " + name + " signs with"
	case msgsig.PolicyStrict:
		text += "; messages signed by " + name + " fail until you pin a key in " + cfg.KnownUsers
	}
	return text, nil
}
