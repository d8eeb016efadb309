package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"securechat/chat"
	"securechat/client/tui"
	"securechat/handshake"
	"securechat/msgsig"
)

// RunInteractive is the terminal client: connect (prompts happen here, in
// cooked mode), then the line editor, reconnecting when the link drops.
func RunInteractive(ctx context.Context, cfg *Config, opts tui.Options) error {
	// Before the line editor takes the terminal, failover notes go to
	// standard error, as the host key question and Password: do.
	l, err := dialAny(ctx, cfg, inOrder(len(cfg.addrs())), failoverNote(os.Stderr))
	if err != nil {
		return err
	}
	ui, restore, err := tui.NewTTY(os.Stdin, os.Stdout, opts)
	if err != nil {
		l.Close()
		return err
	}
	// Restored before the caller prints an error, so that it lands on a
	// clean line of a terminal in its normal mode.
	defer restore()
	return runInteractive(ctx, cfg, l, ui)
}

// interactive is one run of the terminal client, over any number of
// connections. One goroutine (run's) owns it; the UI is safe from any.
type interactive struct {
	cfg *Config
	ui  *tui.UI

	l           *Link // nil while reconnecting
	connectedAt time.Time
	stop        error // set when the server ended the session on purpose
	ros         *roster
	nextID      int
	redial      redialer

	sc     *sigChecker // judges signed messages; nil without known_users
	prompt *keyPrompt  // asks about new signing keys; nil unless --user-key-check ask
	status string      // the prompt's status, without the open key question

	ignored map[string]bool // names whose messages and DMs are not shown
	lastDM  string          // who sent the last direct message, for /reply

	// Lines wait in queue to be sent at the pace the server's flood limit
	// allows, as script mode does: when the welcome announces a limit, one
	// line is in flight at a time, and a line refused as a flood is sent
	// again after the wait the server asks for.
	queue    []*chat.Request
	inflight *chat.Request
	retryAt  time.Time
	retry    *time.Timer
}

// redialResult is what the background reconnect brings back.
type redialResult struct {
	l   *Link
	err error
}

func runInteractive(ctx context.Context, cfg *Config, l *Link, ui *tui.UI) error {
	// From now on the terminal belongs to the line editor: a password
	// prompt there could end up in the chat input. Reconnects reuse the
	// password that worked, and a refused one ends the client (exit 3).
	worked := cfg.Password
	cfg.Password = func(attempt int) ([]byte, error) {
		if attempt > 1 {
			return nil, handshake.ErrAuthFailed
		}
		return worked(1)
	}
	ctx, cancel := context.WithCancel(ctx)
	redialed := make(chan redialResult, 1)
	redialing := false
	defer func() {
		cancel()
		if redialing {
			if r := <-redialed; r.l != nil {
				r.l.Close()
			}
		}
	}()

	s := &interactive{cfg: cfg, ui: ui, ignored: map[string]bool{}}
	s.redial = redialer{cfg: cfg, waiting: func(cause error, d time.Duration, attempt int) {
		if attempt > 1 {
			s.sys("%v", cause)
		}
		s.sys("reconnecting in %s", d.Round(100*time.Millisecond))
	}}
	var ask func(who, fingerprint string) (bool, error)
	if cfg.UserKeyPolicy == msgsig.PolicyAsk && cfg.KnownUsers != "" {
		s.prompt = newKeyPrompt(cfg.KnownUsers, func(text string) { s.sys("%s", text) })
		ask = s.prompt.ask
	}
	sc, err := newSigChecker(cfg, l, ask, s.errorLine)
	if err != nil {
		l.Close()
		return err
	}
	if sc != nil {
		sc.prompt = s.prompt
	}
	s.sc = sc
	defer sc.save(io.Discard)
	lines := readLines(ui)
	s.connected(l)
	s.redial.connected(l)
	s.redial.failedOver = func(addr string, err error, next string) {
		s.sys("%v; trying %s", err, next)
	}
	s.sys("connected to %s over %s (%s, host key %s)", l.addr, cfg.Transport.Name(), l.sess.Group, handshake.Fingerprint(l.sess.HostKey))
	s.showWelcome()

	for {
		var events <-chan *chat.Event
		if s.l != nil {
			events = s.l.events
		}
		var retry <-chan time.Time
		if s.retry != nil {
			retry = s.retry.C
		}
		select {
		case ev, ok := <-events:
			if !ok {
				cause, err := s.lost()
				if err != nil {
					return err
				}
				// The redialer is the goroutine's alone until it reports.
				redialing = true
				go func() {
					l, err := s.redial.redial(ctx, cause)
					redialed <- redialResult{l, err}
				}()
				continue
			}
			s.event(ev)
		case line, ok := <-lines:
			if !ok {
				if s.l != nil {
					s.l.Close()
				}
				return nil
			}
			if s.line(line) {
				return nil
			}
		case r := <-redialed:
			redialing = false
			if r.err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return r.err
			}
			s.connected(r.l)
			s.sys("reconnected to %s; host key %s checked again; rejoining %s", r.l.addr,
				handshake.Fingerprint(r.l.sess.HostKey), strings.Join(s.cfg.Rooms, " "))
			s.showWelcome()
		case <-retry:
			s.retry = nil
			s.pump()
		case <-ctx.Done():
			if s.l != nil {
				s.l.Close()
			}
			return nil
		}
	}
}

// readLines runs the line editor in a goroutine of its own, so that the
// prompt and the echo stay alive whatever the connection does. The
// channel is closed when the user quits.
func readLines(ui *tui.UI) <-chan string {
	lines := make(chan string)
	go func() {
		defer close(lines)
		for {
			s, err := ui.ReadLine()
			if err != nil {
				return
			}
			lines <- s
		}
	}()
	return lines
}

func (s *interactive) sys(format string, args ...any) {
	s.ui.Show(tui.Event{Time: time.Now(), Kind: "system", Text: fmt.Sprintf(format, args...)})
}

func (s *interactive) errorLine(text string) {
	s.ui.Show(tui.Event{Time: time.Now(), Kind: "error", Text: text})
}

// connected starts using l.
func (s *interactive) connected(l *Link) {
	s.l, s.connectedAt, s.stop = l, time.Now(), nil
	s.sc.welcomed()
	s.ros = newRoster(s.cfg.User)
	s.ros.current = initialRoom(s.cfg, l.welcome)
	s.setStatus("")
	s.ui.SetRoom(s.ros.current)
	s.ui.SetMaxLine(textLimit(l.welcome))
}

func (s *interactive) showWelcome() {
	for _, d := range toDisplay(s.l.welcome) {
		s.ui.Show(d)
	}
	if note := signingNote(s.l); note != "" {
		s.sys("%s", note)
	}
}

// signingNote tells a user whose messages go unsigned why (PROTOCOL.md
// §13.16.1): recipients who pinned their key will see them fail.
func signingNote(l *Link) string {
	switch {
	case l.signer != nil:
		return ""
	case l.sess.UserSigner == nil:
		return "your messages are not signed: this session logged in by password"
	}
	return "your messages are not signed: the server did not confirm the key this session logged in with"
}

// lost handles the end of the connection: an error to end the client
// with, or nil and why the connection ended when a reconnect is to start.
func (s *interactive) lost() (cause, err error) {
	l := s.l
	// The server closed or the link broke: finish our side (CLOSE if the
	// server's came, then the transport) before anything else.
	l.sess.Close()
	if s.stop != nil {
		return nil, s.stop
	}
	var pe *protocolError
	if errors.As(l.err, &pe) {
		return nil, fail(nil, pe, "")
	}
	if !s.cfg.Reconnect {
		return nil, fail(ErrConnectionLost, fmt.Errorf("connection lost: %v", l.err), "")
	}
	s.l = nil
	// Lines not yet sent were typed for a connection that is gone; after
	// a reconnect the room may be another, and the user may have given up.
	if n := len(s.queue) + btoi(s.inflight != nil); n > 0 {
		s.errorLine(fmt.Sprintf("%d typed lines were not sent", n))
	}
	s.queue, s.inflight = nil, nil
	if s.retry != nil {
		s.retry.Stop()
		s.retry = nil
	}
	s.setStatus("reconnecting")
	s.sys("connection lost (%v); reconnecting; lines typed until then are not sent", l.err)
	// Start the backoff over only after a connection that lasted: a
	// server that accepts and drops at once must not be hit every second.
	if time.Since(s.connectedAt) > backoffMax {
		s.redial.progress()
	}
	s.cfg.Rooms = s.ros.rooms()
	return l.err, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// event handles one event from the server.
func (s *interactive) event(ev *chat.Event) {
	if err, ok := endedByServer(ev); ok {
		s.stop = err
	}
	if s.ros.apply(ev) {
		s.ui.SetRoom(s.ros.current)
	}
	if ev.Type == chat.TypeRoom || ev.Type == chat.TypeMsg {
		s.ui.SetNicks(s.ros.nicks())
	}
	if s.answered(ev) {
		return
	}
	// Every message is judged, shown or not: the counter rules depend on
	// seeing them all in order.
	var mark tui.Event
	asked := s.prompt.pending()
	s.sc.mark(ev, &mark)
	if s.prompt.pending() != asked {
		s.setStatus(s.status)
	}
	if ev.Type == chat.TypeMsg && s.ignored[ev.From] {
		switch ev.Kind {
		case chat.KindMsg, chat.KindMe, chat.KindDM:
			return
		}
	}
	if ev.Type == chat.TypeMsg && ev.Kind == chat.KindDM && !ev.History && ev.From != "" && ev.From != s.cfg.User {
		s.lastDM = ev.From
	}
	for _, d := range toDisplay(localTimes(ev)) {
		d.Sig, d.SigReason = mark.Sig, mark.SigReason
		if mark.Sig == tui.SigVerified {
			d.Signed = time.UnixMilli(int64(ev.Cts))
		}
		s.ui.Show(d)
	}
	for _, l := range whoisKeyLines(s.cfg, s.l.welcome.User, s.l.signingKey(), ev) {
		s.sys("%s", l)
	}
}

// answered handles the answer to the line in flight; it reports whether
// the event is used up (a flood refusal, which is retried, not shown).
func (s *interactive) answered(ev *chat.Event) bool {
	if s.inflight == nil || ev.ID != s.inflight.ID || (ev.Type != chat.TypeAck && ev.Type != chat.TypeError) {
		return false
	}
	req := s.inflight
	s.inflight = nil
	if ev.Type == chat.TypeError && ev.Code == chat.CodeFlood {
		s.queue = slices.Insert(s.queue, 0, req)
		s.retryAt = time.Now().Add(floodWait(ev.RetryMS))
		s.retry = time.NewTimer(time.Until(s.retryAt))
		s.showQueue()
		return true
	}
	s.pump()
	return false
}

// limited reports whether the server announced a flood limit.
func (s *interactive) limited() bool {
	w := s.l.welcome
	return w.Limits != nil && w.Limits.Burst > 0
}

// pump sends what the queue holds, as fast as the flood limit allows.
func (s *interactive) pump() {
	for len(s.queue) > 0 && s.l != nil && s.retry == nil {
		if s.limited() && s.inflight != nil {
			break
		}
		req := s.queue[0]
		s.queue = s.queue[1:]
		if err := s.l.send(req); err != nil {
			s.errorLine(fmt.Sprintf("send failed: %v", err))
			continue
		}
		if s.limited() {
			s.inflight = req
		}
	}
	s.showQueue()
}

// showQueue puts the number of lines waiting in the prompt.
func (s *interactive) showQueue() {
	if s.l == nil {
		return
	}
	if len(s.queue) == 0 {
		s.setStatus("")
		return
	}
	s.setStatus(strconv.Itoa(len(s.queue)) + " waiting")
}

// setStatus shows status in the prompt, after the open question about a
// user's key if there is one, so that neither hides the other.
func (s *interactive) setStatus(status string) {
	s.status = status
	st := s.prompt.status()
	if st != "" && status != "" {
		st += ", "
	}
	s.ui.SetStatus(st + status)
}

// line handles one line the user entered; it reports whether the client
// is to end.
func (s *interactive) line(line string) (quit bool) {
	if strings.TrimSpace(line) == "" {
		return false
	}
	if s.prompt.pending() && !strings.HasPrefix(line, "/") {
		// A question about a user's key is open: a line that is not a
		// command answers it, and is never sent.
		reply, ok := s.prompt.answer(line)
		if ok {
			s.sys("%s", reply)
		} else {
			s.errorLine(reply)
		}
		s.setStatus(s.status)
		return false
	}
	room := ""
	if s.ros != nil {
		room = s.ros.current
	}
	req, err := chat.ParseLine(line, room)
	if err != nil {
		// A usage error is an error, not an info line.
		s.errorLine(err.Error())
		return false
	}
	if req.Type == chat.TypeCmd {
		switch req.Cmd {
		case "quit":
			if s.l != nil {
				s.nextID++
				req.ID = "q" + strconv.Itoa(s.nextID)
				s.l.send(req)
				s.l.Close()
			}
			return true
		case "ignore", "unignore":
			s.ignore(req)
			return false
		case "forget":
			if text, err := forgetUser(s.cfg, s.sc, req.Args[0]); err != nil {
				s.errorLine(err.Error())
			} else {
				s.sys("%s", text)
			}
			return false
		}
	}
	if s.l == nil {
		// Never send what was typed while the client could not: the user
		// may have taken it for dead and typed something meant elsewhere.
		s.errorLine("not connected: the line was not sent (Up brings it back)")
		return false
	}
	if req.Type == chat.TypeCmd && req.Cmd == "fingerprint" {
		s.sys("host key fingerprint %s", handshake.Fingerprint(s.l.sess.HostKey))
		return false
	}
	if req.Type == chat.TypeCmd && req.Cmd == "reply" {
		if s.lastDM == "" {
			s.errorLine("nobody has sent you a direct message yet")
			return false
		}
		req = &chat.Request{Type: chat.TypeMsg, To: s.lastDM, Text: req.Args[0]}
	}
	if req.Type == chat.TypeMsg && req.Room == "" && req.To == "" {
		s.sys("you are in no room: /join #room first")
		return false
	}
	if err := checkRequestSize(req, textLimit(s.l.welcome)); err != nil {
		s.errorLine(errorText(err) + " (Up brings the line back)")
		return false
	}
	s.nextID++
	req.ID = "c" + strconv.Itoa(s.nextID)
	s.queue = append(s.queue, req)
	s.pump()
	return false
}

// ignore carries out /ignore [NAME] and /unignore NAME.
func (s *interactive) ignore(req *chat.Request) {
	if len(req.Args) == 0 {
		if len(s.ignored) == 0 {
			s.sys("you ignore nobody")
			return
		}
		var names []string
		for n := range s.ignored {
			names = append(names, n)
		}
		slices.Sort(names)
		s.sys("you ignore %s", strings.Join(names, " "))
		return
	}
	name := req.Args[0]
	if !chat.ValidUser(name) {
		s.errorLine(fmt.Sprintf("%q is not a valid name", name))
		return
	}
	if req.Cmd == "unignore" {
		if !s.ignored[name] {
			s.errorLine(fmt.Sprintf("you do not ignore %s", name))
			return
		}
		delete(s.ignored, name)
		s.sys("no longer ignoring %s", name)
		return
	}
	s.ignored[name] = true
	s.sys("ignoring %s: their messages and direct messages are hidden until /unignore %s", name, name)
}

// localTimes rewrites the one server text that carries a time, the whois
// reply's "since", from the wire's UTC timestamp to local time as the chat
// lines show it. Script mode keeps the wire's form.
func localTimes(ev *chat.Event) *chat.Event {
	if ev.Type != chat.TypeReply || ev.Cmd != "whois" || ev.Since == "" || !strings.Contains(ev.Text, ev.Since) {
		return ev
	}
	t, err := time.Parse(time.RFC3339Nano, ev.Since)
	if err != nil {
		return ev
	}
	c := *ev
	c.Text = strings.Replace(ev.Text, ev.Since, localTime(t, time.Now()), 1)
	return &c
}

// localTime is t as a person reads it: "15:04" today, "Mon 2 Jan 15:04"
// on another day.
func localTime(t, now time.Time) string {
	t, now = t.Local(), now.Local()
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format("15:04")
	}
	return t.Format("Mon 2 Jan 15:04")
}
