package client

import (
	"errors"
	"fmt"
	"io"

	"securechat/chat"
	"securechat/client/tui"
	"securechat/msgsig"
)

// sigChecker judges the messages of one client run (PROTOCOL.md
// §13.16.5): one msgsig.Verifier across reconnects, so that counters
// and the answers given at prompts last the whole run. A nil *sigChecker
// checks nothing and marks nothing.
type sigChecker struct {
	v *msgsig.Verifier
	// warned holds the warnings already given (a changed or revoked key,
	// an unreadable known_users), so each is said once, not per message.
	warned map[string]bool
	warn   func(string)
	// prompt, with --user-key-check ask, asks about new keys; it is told
	// the key of each message before the message is checked.
	prompt *keyPrompt
}

// newSigChecker returns the checker for cfg's known_users, or nil when
// cfg names none. l is the first session: its user and signing key are
// this client's own (its own messages are checked against that key).
func newSigChecker(cfg *Config, l *Link, ask func(who, fingerprint string) (bool, error), warn func(string)) (*sigChecker, error) {
	if cfg.KnownUsers == "" {
		return nil, nil
	}
	v, err := msgsig.NewVerifier(msgsig.Config{
		KnownUsers: cfg.KnownUsers,
		Counters:   cfg.Counters,
		HostPort:   cfg.Addr,
		Self:       l.welcome.User,
		SelfKey:    l.signingKey(),
		Policy:     cfg.UserKeyPolicy,
		Ask:        ask,
	})
	if err != nil {
		return nil, fail(nil, err, "")
	}
	return &sigChecker{v: v, warned: map[string]bool{}, warn: warn}, nil
}

// reconsider takes back the answers refusing who's keys, in the prompt
// and in the verifier, and reports whether there were any.
func (c *sigChecker) reconsider(who string) bool {
	if c == nil {
		return false
	}
	refused := c.prompt.forget(who)
	return c.v.Reconsider(who)+refused > 0
}

// welcomed starts the replay of the offline DMs that follow a welcome.
func (c *sigChecker) welcomed() {
	if c != nil {
		c.v.StartReplay("")
	}
}

// mark judges ev when it is a message and marks d, the line shown for
// it; a room event starts the replay of that room's history.
func (c *sigChecker) mark(ev *chat.Event, d *tui.Event) {
	if c == nil {
		return
	}
	if ev.Type == chat.TypeRoom {
		c.v.StartReplay(ev.Room)
		return
	}
	if ev.Type != chat.TypeMsg || (ev.Kind != chat.KindMsg && ev.Kind != chat.KindMe && ev.Kind != chat.KindDM) {
		return
	}
	if c.prompt != nil {
		c.prompt.current, _ = msgsig.DecodeKey(ev.Key)
	}
	r := c.v.Check(&msgsig.Event{Kind: ev.Kind, Room: ev.Room, To: ev.To, From: ev.From, Text: ev.Text,
		History: ev.History, Key: ev.Key, Sig: ev.Sig, Ctr: ev.Ctr, Cts: ev.Cts})
	d.Sig, d.SigReason = r.Status.String(), r.Reason.String()
	if r.Err != nil && c.warn != nil {
		c.warnOnce(r.Err)
	}
}

// warnOnce announces a changed or revoked key, or a known_users that
// cannot be used, the first time it shows (PROTOCOL.md §13.16.7).
func (c *sigChecker) warnOnce(err error) {
	msg := err.Error()
	var changed *msgsig.KeyChangedError
	var revoked *msgsig.KeyRevokedError
	switch {
	case errors.As(err, &changed):
		msg = fmt.Sprintf("WARNING: THE SIGNING KEY OF %s HAS CHANGED. %s:%d pins %s; the message is signed by %s. "+
			"Someone may be impersonating %s. If the key really changed, remove that line (/forget %s) and the next message pins the new key.",
			changed.Who, changed.File, changed.Line, changed.Want, changed.Got, changed.Who, userOf(changed.Who))
	case errors.As(err, &revoked):
		msg = fmt.Sprintf("WARNING: %s SIGNED WITH A REVOKED KEY (%s, %s:%d).", revoked.Who, revoked.Fingerprint, revoked.File, revoked.Line)
	}
	if c.warned[msg] {
		return
	}
	c.warned[msg] = true
	c.warn(msg)
}

// save keeps the highest counters for the next run.
func (c *sigChecker) save(errOut io.Writer) {
	if c == nil {
		return
	}
	if err := c.v.SaveCounters(); err != nil {
		fmt.Fprintf(errOut, "securechat: %v\n", err)
	}
}
