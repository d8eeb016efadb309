package server

import (
	"net/netip"
	"time"

	"securechat/handshake"
)

// Hooks let the caller count what the server does (for metrics) without
// this package depending on a metrics library. Every hook is optional.
// They are called from the connections' goroutines, concurrently, so they
// must be safe for that, quick, and must not block. No hook is given a
// user name or an address: everything they report is one of a few fixed
// values, fit to be a metric label.
type Hooks struct {
	// Refused is called for each connection refused before its handshake,
	// with one of the Refused* reasons.
	Refused func(reason string)
	// Penalty is called each time a source is charged a penalty. Exempt
	// sources and a PenaltyBox with penalties off are not charged.
	Penalty func(ev PenaltyEvent)
	// Login is called with the outcome of each login attempt, password or
	// key, one of the Login* results.
	Login func(result string)
	// Handshake is called when a handshake and login ends: with the key
	// exchange group (0 if none was chosen), one of the Handshake* results,
	// and the time from accept, which includes any wait for a password
	// check.
	Handshake func(group handshake.Group, result string, took time.Duration)
	// Rekey is called when a logged-in session's record layer moves to its
	// next key generation: sent by the server, or by the client.
	Rekey func(sent bool)
}

// Reasons for Hooks.Refused.
const (
	RefusedPerSource      = "per_source"      // the source's unauthenticated connections are at PerSource
	RefusedMaxStartups    = "max_startups"    // the StartupGate's random early drop or Full
	RefusedPenalty        = "penalty"         // the source serves a penalty
	RefusedPendingPenalty = "penalty_pending" // it would, counting its password checks in flight
	RefusedPressure       = "pressure"        // a source with a penalty or a check in flight, while the gate is busy
	RefusedEvicted        = "evicted"         // a pre-login connection closed to make room for a cleaner source
)

// refusedReason maps the log text of a refusal to its reason for Hooks.
var refusedReason = map[string]string{
	refusedPerSource: RefusedPerSource,
	refusedStartups:  RefusedMaxStartups,
	refusedPenalty:   RefusedPenalty,
	refusedPending:   RefusedPendingPenalty,
	refusedPressure:  RefusedPressure,
	evictedStartup:   RefusedEvicted,
}

// Results for Hooks.Login.
const (
	LoginOK        = "ok"        // the password or key was accepted
	LoginFailed    = "failed"    // wrong password, unknown key or no such account
	LoginRefused   = "refused"   // not checked: the source is penalised or already has a check waiting, or password logins are off
	LoginRejected  = "rejected"  // not checked: malformed name or password, or an unknown method
	LoginUnchecked = "unchecked" // not checked: the grace time ran out in the queue, or the server is stopping
)

// Results for Hooks.Handshake.
const (
	HandshakeOK         = "ok"
	HandshakeAuthFailed = "auth_failed" // it ended after a failed login attempt
	HandshakeTimeout    = "timeout"     // a step or the login grace time ran out
	HandshakeError      = "error"       // anything else: bad messages, negotiation, the client leaving
)

// login reports a password attempt's result; h may be nil.
func (h *Hooks) login(result string) {
	if h != nil && h.Login != nil {
		h.Login(result)
	}
}

// penalize charges src the penalty for ev in b and reports it to Penalty;
// h may be nil.
func (h *Hooks) penalize(b *PenaltyBox, src netip.Addr, ev PenaltyEvent) {
	if h != nil && h.Penalty != nil && b.charges(src, ev) {
		h.Penalty(ev)
	}
	b.Record(src, ev)
}

// String names the event as OpenSSH's PerSourcePenalties does.
func (ev PenaltyEvent) String() string {
	switch ev {
	case PenaltyAuthFail:
		return "authfail"
	case PenaltyNoAuth:
		return "noauth"
	case PenaltyGraceExceeded:
		return "grace_exceeded"
	}
	return "unknown"
}
