package client

import (
	"crypto/ed25519"
	"fmt"
	"strings"

	"securechat/msgsig"
)

// keyPrompt asks the person at the terminal whether to trust a user's
// signing key seen for the first time (--user-key-check ask, PROTOCOL.md
// §13.16.6), without stopping the chat: the question is printed above the
// prompt, messages go on arriving (those signed by the key in question are
// marked key_pending, never verified), and the next line typed that is
// not a command answers it. Only "yes" pins the key. A changed key is
// never asked about: it fails, and the user removes the old pin with
// /forget first, as OpenSSH never offers to accept a changed host key.
//
// One goroutine (the interactive loop's) uses it: Ask is called from
// message checks, answer from typed lines.
type keyPrompt struct {
	file string // known_users
	show func(text string)

	// open holds the questions not answered yet, in the order asked; the
	// first is the one on screen.
	open []keyQuestion
	// answered holds the answers given, by question: a "no" is not asked
	// again in this run.
	answered map[string]bool
	// current is the key of the message being checked: Ask is told only
	// its fingerprint, and a "yes" pins the key itself.
	current ed25519.PublicKey
}

type keyQuestion struct {
	who, fingerprint string
	key              ed25519.PublicKey
}

func (q keyQuestion) id() string { return q.who + " " + q.fingerprint }

func newKeyPrompt(file string, show func(string)) *keyPrompt {
	return &keyPrompt{file: file, show: show, answered: map[string]bool{}}
}

// ask is the Verifier's Config.Ask: it answers from what the user said,
// or opens the question and leaves the message pending.
func (p *keyPrompt) ask(who, fingerprint string) (bool, error) {
	q := keyQuestion{who: who, fingerprint: fingerprint, key: p.current}
	if yes, ok := p.answered[q.id()]; ok {
		return yes, nil
	}
	for _, o := range p.open {
		if o.id() == q.id() {
			return false, msgsig.ErrAskLater
		}
	}
	if q.key == nil || msgsig.Fingerprint(q.key) != fingerprint {
		// Not the key of the message being checked: nothing to pin.
		return false, msgsig.ErrAskLater
	}
	p.open = append(p.open, q)
	if len(p.open) == 1 {
		p.showQuestion()
	}
	return false, msgsig.ErrAskLater
}

// pending reports whether a question waits for an answer.
func (p *keyPrompt) pending() bool { return p != nil && len(p.open) > 0 }

// status is the prompt's reminder of the open question, or "".
func (p *keyPrompt) status() string {
	if !p.pending() {
		return ""
	}
	return "trust " + userOf(p.open[0].who) + "'s key? yes/no"
}

func (p *keyPrompt) showQuestion() {
	q := p.open[0]
	p.show(fmt.Sprintf("%s signs with a key you have not seen before: %s. "+
		"Compare it with the fingerprint %s sees (ssh-keygen -l -f their key's .pub file). "+
		"Trust it and pin it in %s? Type yes or no. Until then their messages are marked ?? (key_pending).",
		q.who, q.fingerprint, userOf(q.who), p.file))
}

// answer takes line as the answer to the open question. It returns what
// to tell the user, and whether the line was an answer at all (anything
// but yes or no asks again).
func (p *keyPrompt) answer(line string) (reply string, ok bool) {
	q := p.open[0]
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "yes":
		added, err := msgsig.AddKnownUser(p.file, q.who, q.key)
		if err != nil {
			// Another pin or a revocation arrived meanwhile, or the file
			// cannot be written: the question stays open for a later message.
			p.next()
			return fmt.Sprintf("%s's key was not pinned: %v", userOf(q.who), err), true
		}
		p.answered[q.id()] = true
		p.next()
		if !added {
			return fmt.Sprintf("%s's key %s was pinned already in %s", userOf(q.who), q.fingerprint, p.file), true
		}
		return fmt.Sprintf("pinned %s's key %s in %s; their messages signed with it are verified from now on", userOf(q.who), q.fingerprint, p.file), true
	case "no":
		p.answered[q.id()] = false
		p.next()
		return fmt.Sprintf("not trusting %s's key %s: their messages signed with it fail (key_rejected) until the client restarts or you /forget %s", userOf(q.who), q.fingerprint, userOf(q.who)), true
	}
	return fmt.Sprintf("please type yes or no about %s's key %s; the line was not sent (Up brings it back)", userOf(q.who), q.fingerprint), false
}

// next drops the question answered and shows the next one.
func (p *keyPrompt) next() {
	p.open = p.open[1:]
	if len(p.open) > 0 {
		p.showQuestion()
	}
}

// userOf is the user name of "user@host:port".
func userOf(who string) string {
	u, _, _ := strings.Cut(who, "@")
	return u
}

// forget drops the answers given about who's keys, so that after /forget
// the next key is asked about again rather than pinned from an old "yes"
// or refused from an old "no". It returns how many "no" answers it dropped.
func (p *keyPrompt) forget(who string) (refused int) {
	if p == nil {
		return 0
	}
	for id, yes := range p.answered {
		if strings.HasPrefix(id, who+" ") {
			delete(p.answered, id)
			if !yes {
				refused++
			}
		}
	}
	return refused
}
