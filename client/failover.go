package client

// Failover: one connect may name several addresses of the same server (the
// nodes of a cluster, which all serve the same host key). The client tries
// them in order and moves to the next when one cannot be reached. After a
// lost connection it starts with a random one of the other addresses and
// tries the one that was lost last, so that the clients of a dead node
// spread over the live ones rather than all moving to the next in the
// list.
//
// Host keys: known_hosts stays per host:port, as in OpenSSH, but the
// addresses of one connect are one server, so a key known_hosts trusts
// for any of them is trusted for all of them (and is recorded for the
// address that lacked it, with the usual "Permanently added" note). This
// is what users expect after copying one host key to every node: pinning
// the first address once is enough, and adding a node to the list does
// not bring back the first-contact question. It gives an attacker nothing:
// to pass, a server must prove it holds a key the user already trusts for
// this service. The other way round is strict: an address whose own lines
// list another key is refused as changed, as with one address; and once
// any listed address has a trusted key, an address presenting a key that
// none of them trusts is a changed host key (exit 4) too, under every
// policy, even accept-new, because a different key at one node of one
// server is what a machine in the middle looks like. A --fingerprint pin
// applies to every address. A next key a node announces during a host
// key rotation is recorded for every listed address that trusts the
// current key, so that the nodes can all move to the new key without a
// changed-key failure at any of them (PROTOCOL.md §7.3, §7.5).

import (
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"securechat/handshake"
)

// maxAddrs bounds the addresses of one connect; a longer list is a mistake.
const maxAddrs = 32

// ParseAddrs splits a comma-separated list of HOST:PORT addresses (IPv6
// in brackets, [::1]:7777). Spaces around an address are ignored; an
// empty entry, a duplicate or an address without a port is an error.
func ParseAddrs(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, fmt.Errorf("%q has an empty address; separate HOST:PORT addresses with single commas", s)
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("%q is not HOST:PORT (IPv6 addresses go in brackets: [::1]:7777)", a)
		}
		if seen[a] {
			return nil, fmt.Errorf("%s is listed twice", a)
		}
		seen[a] = true
		out = append(out, a)
	}
	if len(out) > maxAddrs {
		return nil, fmt.Errorf("%d addresses: at most %d", len(out), maxAddrs)
	}
	return out, nil
}

// addrs is the list of addresses to dial: cfg.Addrs, or cfg.Addr alone.
func (cfg *Config) addrs() []string {
	if len(cfg.Addrs) > 0 {
		return cfg.Addrs
	}
	return []string{cfg.Addr}
}

// trustFor returns the host key checks for addr.
func (cfg *Config) trustFor(addr string) *HostKeyTrust {
	if cfg.TrustFor != nil {
		return cfg.TrustFor(addr)
	}
	return &HostKeyTrust{Check: cfg.HostKey, Record: cfg.HostKeyVerified, RecordNext: cfg.HostKeysAnnounced}
}

// inOrder is the order of a first dial: the addresses as given.
func inOrder(n int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	return order
}

// failoverOrder is the order of a redial after the connection to address
// lost ended: the other addresses, from one that pick chooses on and
// around, then lost. pick(k) returns a number in [0, k).
func failoverOrder(n, lost int, pick func(k int) int) []int {
	order := make([]int, 0, n)
	if n > 1 {
		first := pick(n - 1)
		for i := range n - 1 {
			order = append(order, (lost+1+(first+i)%(n-1))%n)
		}
	}
	return append(order, lost)
}

// dialAny tries the addresses of cfg once each, in order (indexes into
// cfg's addresses), and returns the first link. An error that fatal says must not
// be retried ends it at once: a refused login or a server that could not
// be authenticated would be refused the same way by the next node, and a
// refused login adds to the penalties the server counts. failed, if set,
// is told of each address that failed before the next one is tried.
func dialAny(ctx context.Context, cfg *Config, order []int, failed func(addr string, err error, next string)) (*Link, error) {
	addrs := cfg.addrs()
	var errs []error
	for i, idx := range order {
		addr := addrs[idx]
		l, err := dialAddr(ctx, cfg, addr)
		if err == nil {
			l.index = idx
			return l, nil
		}
		if fatal(err) || ctx.Err() != nil {
			return nil, err
		}
		errs = append(errs, err)
		if i+1 < len(order) && failed != nil {
			failed(addr, err, addrs[order[i+1]])
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, fail(ErrConnectionLost, &allFailedError{errs}, Hint(errs[len(errs)-1]))
}

// failoverNote returns the note printed on w when an address failed and
// the next is tried.
func failoverNote(w io.Writer) func(addr string, err error, next string) {
	return func(addr string, err error, next string) {
		fmt.Fprintf(w, "securechat: %v; trying %s\n", err, next)
	}
}

// allFailedError is a round of dialing in which every address failed.
type allFailedError struct{ errs []error }

func (e *allFailedError) Error() string {
	var b strings.Builder
	for i, err := range e.errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *allFailedError) Unwrap() []error { return e.errs }

// KnownHostsGroupTrust returns the host key checks for each of addrs, the
// addresses of one server, by the rules at the top of this file: a key
// known_hosts trusts for one of them is trusted for all. With a single
// address it is KnownHostsTrust.
func KnownHostsGroupTrust(file string, addrs []string, policy handshake.HostKeyPolicy, pinned string,
	ask func(hostport, fingerprint string) (bool, error), notes io.Writer) (func(addr string) *HostKeyTrust, error) {
	g := &hostGroup{file: file, addrs: addrs, pinned: pinned, notes: notes,
		own: map[string]*HostKeyTrust{}, vouched: map[string]map[string]bool{}}
	for _, a := range addrs {
		t, err := KnownHostsTrust(file, a, policy, pinned, ask, notes)
		if err != nil {
			return nil, err
		}
		g.own[a] = t
	}
	return func(addr string) *HostKeyTrust {
		own, ok := g.own[addr]
		if !ok || len(addrs) == 1 {
			return own
		}
		return &HostKeyTrust{
			Check:  func(key ed25519.PublicKey) error { return g.check(addr, key) },
			Record: func(key ed25519.PublicKey) error { return g.record(addr, key) },
			RecordNext: func(sess *handshake.Session, payload []byte) {
				own.RecordNext(sess, payload)
				g.recordNextForOthers(addr, sess, payload)
			},
		}
	}, nil
}

// hostGroup checks the host keys of the addresses of one server.
type hostGroup struct {
	file   string
	addrs  []string
	pinned string
	notes  io.Writer
	own    map[string]*HostKeyTrust // each address's own check, by policy

	mu sync.Mutex
	// vouched holds, per address, the keys check accepted because another
	// listed address trusts them, until record writes them.
	vouched map[string]map[string]bool
}

// siblingKeyError is an address presenting a key that none of the
// addresses of its connect trusts while one of them trusts another key.
type siblingKeyError struct {
	*handshake.HostKeyChangedError
	sibling string // the address whose line is cited
}

func (e *siblingKeyError) Unwrap() error { return e.HostKeyChangedError }

func (g *hostGroup) check(addr string, key ed25519.PublicKey) error {
	kh, err := handshake.LoadKnownHosts(g.file)
	if err != nil {
		return err
	}
	var unknown *handshake.HostKeyUnknownError
	if err := kh.Check(addr, key); !errors.As(err, &unknown) {
		// Its own lines decide: the key is listed, listed as revoked,
		// or the address is listed with another key (changed).
		return g.own[addr].Check(key)
	}
	var other *handshake.KnownHost
	for _, a := range g.addrs {
		if a == addr {
			continue
		}
		if kh.Check(a, key) == nil {
			if fp := handshake.Fingerprint(key); g.pinned != "" && g.pinned != fp {
				return &handshake.PinnedKeyMismatchError{HostPort: addr, Want: g.pinned, Got: fp}
			}
			g.mu.Lock()
			if g.vouched[addr] == nil {
				g.vouched[addr] = map[string]bool{}
			}
			g.vouched[addr][string(key)] = true
			g.mu.Unlock()
			return nil
		}
		if lines := kh.Lookup(a); other == nil && len(lines) > 0 {
			other = &lines[0]
		}
	}
	if other != nil && (g.pinned == "" || g.pinned != handshake.Fingerprint(key)) {
		return &siblingKeyError{sibling: other.HostPort, HostKeyChangedError: &handshake.HostKeyChangedError{
			HostPort: addr, File: kh.File, Line: other.Line,
			Want: handshake.Fingerprint(other.Key), Got: handshake.Fingerprint(key),
		}}
	}
	return g.own[addr].Check(key)
}

// record writes a key that check accepted for addr because another
// address vouched for it, once the server proved it holds the key; other
// keys go to the address's own record.
func (g *hostGroup) record(addr string, key ed25519.PublicKey) error {
	g.mu.Lock()
	vouched := g.vouched[addr][string(key)]
	delete(g.vouched[addr], string(key))
	g.mu.Unlock()
	if vouched {
		kh, err := handshake.LoadKnownHosts(g.file)
		if err != nil {
			return fail(nil, fmt.Errorf("cannot record the host key of %s: %w", addr, err), "")
		}
		if !listed(kh, addr, key) {
			if err := kh.Add(addr, key); err != nil {
				return fail(nil, fmt.Errorf("cannot record the host key of %s: %w", addr, err), "")
			}
			fmt.Fprint(g.notes, HostKeyAddedMessage(addr))
		}
	}
	// Also lets the address's own checker vouch for a next key the
	// server announces (RecordNext).
	return g.own[addr].Record(key)
}

// recordNextForOthers records the next host key that the server at addr
// announced (PROTOCOL.md §7.5) for the other addresses whose lines trust
// the session's key too. The address's own RecordNext has recorded it for
// addr, or warned why not; without a trusted current key for addr itself
// nothing is recorded for the others either. It never adds a revoked key
// and is silent, as the address's own recording is.
func (g *hostGroup) recordNextForOthers(addr string, sess *handshake.Session, payload []byte) {
	next, err := handshake.VerifyHostKeyAnnouncement(payload, sess.HostKey, sess.SessionID)
	if err != nil {
		return
	}
	kh, err := handshake.LoadKnownHosts(g.file)
	if err != nil || kh.Check(addr, sess.HostKey) != nil {
		return
	}
	for _, a := range g.addrs {
		if a == addr || kh.Check(a, sess.HostKey) != nil {
			continue
		}
		var revoked *handshake.HostKeyRevokedError
		if err := kh.Check(a, next); err == nil || errors.As(err, &revoked) {
			continue
		}
		if err := kh.Add(a, next); err != nil {
			fmt.Fprintf(g.notes, "securechat: warning: not recording the next host key for %s: %s\n",
				displayHost(a), strings.TrimPrefix(err.Error(), "handshake: "))
		}
	}
}

// listed reports whether kh lists key for hostport, as a trusted key.
func listed(kh *handshake.KnownHosts, hostport string, key ed25519.PublicKey) bool {
	for _, h := range kh.Lookup(hostport) {
		if subtle.ConstantTimeCompare(h.Key, key) == 1 {
			return true
		}
	}
	return false
}
