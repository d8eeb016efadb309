package server

import (
	"net"
	"net/netip"
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
// limits' locks and logs through the server's rate-bounded refusal log.
func (s *Server) PrecheckQUIC(remote net.Addr, handshaking int) bool {
	src := addrOf(remote)
	if left, why, blocked := s.cfg.Penalties.Blocked(src); blocked {
		s.logEarlyRefusal(src, why, "for", left.Round(time.Second))
		return false
	}
	g := s.cfg.Gate
	if held, capped := g.heldBySource(src); capped && held+handshaking >= g.PerSource {
		s.logEarlyRefusal(src, refusedPerSource, "in_handshake", handshaking)
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
	return len(g.bySource[sourceBlock(src)]), true
}

func (s *Server) logEarlyRefusal(src netip.Addr, why string, args ...any) {
	s.refused(why)
	s.logRefusal(src, why, append(args, "stage", "before QUIC handshake")...)
}
