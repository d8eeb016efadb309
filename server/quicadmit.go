package server

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// PrecheckQUIC is the Precheck hook of transport.Options for a QUIC
// listener: at a connection's first packet, before the QUIC handshake, it
// refuses a source the penalty box refuses, and a source that already holds
// its StartupGate share (PerSource) counting handshaking, its connections
// still in their QUIC handshake. Such a source would be refused by
// AdmitQUIC once the handshake were done; refusing it first spares the
// handshake's work and keeps its connections out of the listener's queue,
// where they would crowd out other sources' logins. Exempt sources pass.
//
// It runs on the listener's packet-handling goroutine, so it only takes the
// limits' locks and logs: the first refusal each second at Info, as
// connection refused, the rest at Debug, and counts how many it kept from
// the Info log.
func (s *Server) PrecheckQUIC(remote net.Addr, handshaking int) bool {
	src := addrOf(remote)
	if left, why, blocked := s.cfg.Penalties.Blocked(src); blocked {
		s.logEarlyRefusal(src, "reason", why, "for", left.Round(time.Second))
		return false
	}
	g := s.cfg.Gate
	if held, capped := g.heldBySource(src); capped && held+handshaking >= g.PerSource {
		s.logEarlyRefusal(src, "reason", refusedPerSource, "in_handshake", handshaking)
		return false
	}
	return true
}

// heldBySource reports how many admissions src's block holds, and whether
// a per-source cap applies to it at all.
func (g *StartupGate) heldBySource(src netip.Addr) (held int, capped bool) {
	if g.PerSource <= 0 || g.Exempt.Contains(src) {
		return 0, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.bySource[sourceBlock(src)], true
}

// refusalLog lets one early refusal a second reach the Info log: a flood
// is refused at the rate it sends, and each refusal costs next to nothing
// but its log line.
type refusalLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// pass reports whether this refusal goes to Info, and how many were kept
// from Info since the last one that did.
func (r *refusalLog) pass(now time.Time) (ok bool, suppressed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < time.Second {
		r.suppressed++
		return false, 0
	}
	r.last = now
	suppressed, r.suppressed = r.suppressed, 0
	return true, suppressed
}

func (s *Server) logEarlyRefusal(src netip.Addr, args ...any) {
	log := s.log.With("src", src.String(), "transport", s.cfg.Transport)
	args = append(args, "stage", "before QUIC handshake")
	ok, suppressed := s.quicRefusals.pass(time.Now())
	if !ok {
		log.Debug("connection refused", args...)
		return
	}
	if suppressed > 0 {
		args = append(args, "not_logged_since", suppressed)
	}
	log.Info("connection refused", args...)
}
