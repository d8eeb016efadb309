package server

import (
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// StartupGate caps connections that have not yet authenticated, in the
// manner of OpenSSH's MaxStartups "start:rate:full": below Start every
// connection is admitted; from Start on, each new one is refused with a
// probability that rises linearly from Rate percent to 100 percent at Full.
// Random early drop keeps a flood from locking out every honest client at
// once, which a hard cap would do.
//
// Random drop alone still lets a storm from many sources hold most places,
// so from Start on (under pressure) the gate also takes sides:
//
//   - a source with a penalty or a password check in flight (its score in
//     the [PenaltyBox], above zero) is refused, so the places left go to
//     sources with neither;
//   - a connection the ramp would drop may instead take the place of one
//     that is still in its key exchange (or between login attempts) from a
//     source that is worse off: with a higher score, or with the same score
//     and at least two places more than the newcomer holds. The oldest
//     such connection of the worst such source is evicted. A flood then
//     costs clean sources nothing but the time to evict, while sources that
//     all behave alike still share by random drop.
//
// Sources are counted per address block, as the [PenaltyBox] counts them
// (/32 for IPv4, /64 for IPv6). Exempt sources are trusted: they bypass
// both the per-source and the global cap and are not counted against
// either, so a flood from elsewhere cannot lock them out.
type StartupGate struct {
	Start, Rate, Full int
	// PerSource caps unauthenticated connections from one address block;
	// 0 means no cap.
	PerSource int
	Exempt    *PrefixList

	// score, if set, ranks sources: above zero means a penalty or a check
	// in flight. The server sets it to its PenaltyBox's.
	score func(netip.Prefix) time.Duration

	mu       sync.Mutex
	total    int
	bySource map[netip.Prefix][]*startup // places held, oldest first
	roll     func() int                  // 0..99, replaceable in tests
}

// startup is the place at the gate of one admitted connection. Its
// methods do nothing on a nil startup, which is what exempt sources get.
type startup struct {
	g   *StartupGate
	key netip.Prefix
	// evict ends the connection; nil if it may not be evicted.
	evict    func()
	checking bool // a password check is under way: not evicted meanwhile
	gone     bool // released or evicted
}

// DefaultStartupGate returns OpenSSH's 10:30:100 with a per-source cap of 4.
func DefaultStartupGate() *StartupGate {
	return &StartupGate{Start: 10, Rate: 30, Full: 100, PerSource: 4}
}

// Reasons a StartupGate refuses a connection, for the server log.
const (
	refusedPerSource = "too many unauthenticated connections from this source"
	refusedStartups  = "too many unauthenticated connections (max-startups)"
	refusedPressure  = "source has a penalty or a password check in flight, and unauthenticated connections are many"
	evictedStartup   = "evicted for a connection from a source with a cleaner record (max-startups)"
)

// Admit reports whether a new unauthenticated connection from src may
// proceed, and if not, why. When it admits, the caller must call the
// returned release exactly once, when the connection authenticates or ends.
// A connection admitted this way is never evicted.
func (g *StartupGate) Admit(src netip.Addr) (release func(), why string, ok bool) {
	st, why, ok := g.admit(src, nil)
	if !ok {
		return nil, why, false
	}
	return st.release, "", true
}

// admit is Admit for a connection that evict can end, to make room for a
// connection from a source with a cleaner record. evict is called without
// the gate's lock held, at most once; the place is free when it is called.
func (g *StartupGate) admit(src netip.Addr, evict func()) (st *startup, why string, ok bool) {
	if g.Exempt.Contains(src) {
		return nil, "", true
	}
	key := sourceBlock(src)
	g.mu.Lock()
	if g.bySource == nil {
		g.bySource = make(map[netip.Prefix][]*startup)
	}
	held := len(g.bySource[key])
	if g.PerSource > 0 && held >= g.PerSource {
		g.mu.Unlock()
		return nil, refusedPerSource, false
	}
	score := g.scoreOf(key)
	if g.underPressure() && score > 0 {
		g.mu.Unlock()
		return nil, refusedPressure, false
	}
	var victim *startup
	if !g.admitTotal() {
		if victim = g.victimLocked(key, score, held); victim == nil {
			g.mu.Unlock()
			return nil, refusedStartups, false
		}
		g.dropLocked(victim)
	}
	st = &startup{g: g, key: key, evict: evict}
	g.total++
	g.bySource[key] = append(g.bySource[key], st)
	g.mu.Unlock()
	if victim != nil {
		victim.evict()
	}
	return st, "", true
}

func (g *StartupGate) underPressure() bool { return g.Start > 0 && g.total >= g.Start }

func (g *StartupGate) scoreOf(key netip.Prefix) time.Duration {
	if g.score == nil {
		return 0
	}
	return g.score(key)
}

// victimLocked picks the connection a newcomer from key (with score, and
// held places already) may evict: the oldest evictable one of the source
// with the highest score, then the most places, among those worse off
// than the newcomer. Nil if there is none.
func (g *StartupGate) victimLocked(key netip.Prefix, score time.Duration, held int) *startup {
	var victim *startup
	var vScore time.Duration
	var vHeld int
	for k, sts := range g.bySource {
		if k == key {
			continue
		}
		s := g.scoreOf(k)
		if s < score || s == score && len(sts) <= held+1 {
			continue // not worse off than the newcomer
		}
		if victim != nil && (s < vScore || s == vScore && len(sts) <= vHeld) {
			continue
		}
		for _, st := range sts {
			if st.evict != nil && !st.checking {
				victim, vScore, vHeld = st, s, len(sts)
				break
			}
		}
	}
	return victim
}

// dropLocked frees st's place.
func (g *StartupGate) dropLocked(st *startup) {
	st.gone = true
	g.total--
	sts := g.bySource[st.key]
	for i, x := range sts {
		if x == st {
			sts = append(sts[:i], sts[i+1:]...)
			break
		}
	}
	if len(sts) == 0 {
		delete(g.bySource, st.key)
	} else {
		g.bySource[st.key] = sts
	}
}

// release frees the place, unless it was evicted.
func (st *startup) release() {
	if st == nil {
		return
	}
	st.g.mu.Lock()
	defer st.g.mu.Unlock()
	if !st.gone {
		st.g.dropLocked(st)
	}
}

// beginCheck marks a password check under way, during which the
// connection is not evicted. It reports false if the connection was
// evicted already: then its check must not run.
func (st *startup) beginCheck() bool {
	if st == nil {
		return true
	}
	st.g.mu.Lock()
	defer st.g.mu.Unlock()
	st.checking = true
	return !st.gone
}

// endCheck makes the connection evictable again, between login attempts.
func (st *startup) endCheck() {
	if st == nil {
		return
	}
	st.g.mu.Lock()
	defer st.g.mu.Unlock()
	st.checking = false
}

func (g *StartupGate) admitTotal() bool {
	if g.Start <= 0 || g.total < g.Start {
		return true
	}
	if g.Full <= g.Start || g.total >= g.Full {
		return false
	}
	// Linear ramp from Rate% at Start to 100% at Full.
	p := g.Rate + (100-g.Rate)*(g.total-g.Start)/(g.Full-g.Start)
	roll := g.roll
	if roll == nil {
		roll = cryptoRoll
	}
	return roll() >= p
}

// Unauthenticated reports how many connections from sources that are not
// exempt hold an admission.
func (g *StartupGate) Unauthenticated() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

// PenaltyEvent names why a source earns a penalty, after OpenSSH 9.8's
// PerSourcePenalties.
type PenaltyEvent int

const (
	// PenaltyAuthFail: a login failed; recorded once per connection, at
	// its first failure.
	PenaltyAuthFail PenaltyEvent = iota
	// PenaltyNoAuth: the connection ended without ever trying to log in.
	PenaltyNoAuth
	// PenaltyGraceExceeded: the login grace time ran out.
	PenaltyGraceExceeded
)

// PenaltyBox refuses sources that keep failing. Each event adds its
// duration to the source's running penalty (which drains with time, capped
// at Max); once the remaining penalty reaches Min the source is refused
// until the penalty has drained completely. A source that fails now and
// then never reaches Min and is never refused. Sources are tracked per
// address block (/32 for IPv4, /64 for IPv6, since one host usually owns a
// /64) and the table is bounded: when it is full, new sources are not
// tracked (permissive), so an attacker with many addresses cannot evict the
// penalties of others.
//
// A password check counts before its result is known: each check a source
// has waiting or running adds AuthFail to its penalty for as long as it is
// in flight, so a source that opens connection after connection while its
// guesses wait for the hashing pool is refused at accept instead of only
// once the guesses have failed.
type PenaltyBox struct {
	AuthFail, NoAuth, GraceExceeded time.Duration
	Min, Max                        time.Duration
	MaxSources                      int
	Exempt                          *PrefixList

	mu       sync.Mutex
	until    map[netip.Prefix]penalty
	inflight map[netip.Prefix]int // password checks waiting or running
	now      func() time.Time     // replaceable in tests
	lastGC   time.Time
	overrun  int
}

// DefaultPenaltyBox returns OpenSSH's defaults: authfail 5 s, noauth 1 s,
// grace-exceeded 10 s, min 15 s, max 10 min, 65536 sources.
func DefaultPenaltyBox() *PenaltyBox {
	return &PenaltyBox{
		AuthFail: 5 * time.Second, NoAuth: time.Second, GraceExceeded: 10 * time.Second,
		Min: 15 * time.Second, Max: 10 * time.Minute, MaxSources: 65536,
	}
}

func (b *PenaltyBox) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}

// sourceBlock is the unit every per-source limit counts by: the /32 of an
// IPv4 address and the /64 of an IPv6 one.
func sourceBlock(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

type penalty struct {
	until  time.Time
	active bool // reached Min; refused until drained
	// earned is every penalty the source has earned while its entry
	// lived, and last the time of the latest: the source's record, kept
	// for Max after its penalty has drained, which ranks its password
	// checks (see rank).
	earned time.Duration
	last   time.Time
}

// Reasons a PenaltyBox refuses a source, for the server log.
const (
	refusedPenalty = "source penalised"
	refusedPending = "source penalised counting its password checks in flight"
)

// Blocked reports whether src is refused now, for how long at least, and
// why: because it serves a penalty, or because its penalty together with
// its password checks in flight reaches Min.
func (b *PenaltyBox) Blocked(src netip.Addr) (left time.Duration, why string, blocked bool) {
	return b.blocked(src, 0)
}

// blocked is Blocked leaving out own of the source's checks in flight: a
// check that asks whether it may still run does not count itself.
func (b *PenaltyBox) blocked(src netip.Addr, own int) (time.Duration, string, bool) {
	if b.Exempt.Contains(src) {
		return 0, "", false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	key := sourceBlock(src)
	p := b.until[key]
	left := max(p.until.Sub(b.clock()), 0)
	if p.active && left > 0 {
		return left, refusedPenalty, true
	}
	pending := time.Duration(b.inflight[key]-own) * b.AuthFail
	if pending > 0 && left+pending >= b.Min {
		return left, refusedPending, true
	}
	return 0, "", false
}

// score is how close the block key is to being refused: its remaining
// penalty plus AuthFail for each check in flight. Under pressure the
// startup gate refuses sources whose score is above zero.
func (b *PenaltyBox) score(key netip.Prefix) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	left := max(b.until[key].until.Sub(b.clock()), 0)
	return left + time.Duration(b.inflight[key])*b.AuthFail
}

// rank orders password checks, lower first: the score plus the source's
// record (every penalty it earned and NoAuth per connection refused at
// accept, at most Max, kept until it has been quiet for Max). Without the
// record, a storm source whose penalty has just drained, with one guess in
// flight, would rank with a source that never failed, and a storm from
// many sources, each waiting out its penalty in turn, would keep a new
// source waiting behind their guesses for as long as it lasts.
func (b *PenaltyBox) rank(key netip.Prefix) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.until[key]
	left := max(p.until.Sub(b.clock()), 0)
	return left + time.Duration(b.inflight[key])*b.AuthFail + p.earned
}

// hasRecord reports whether the block key has a record that would shut it
// out if it were a penalty: penalties earned and connections refused at
// accept (see rank) that add up to Min. A user who mistyped a password or
// two, or whose connections random early drop refused a few times, has
// none; a storm source has one within a fraction of a second.
func (b *PenaltyBox) hasRecord(key netip.Prefix) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.until[key]
	return ok && b.Min > 0 && p.earned >= b.Min
}

// beginCheck counts a password check of src as in flight until end is
// called.
func (b *PenaltyBox) beginCheck(src netip.Addr) (end func()) {
	if b.Exempt.Contains(src) {
		return func() {}
	}
	key := sourceBlock(src)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inflight == nil {
		b.inflight = make(map[netip.Prefix]int)
	}
	b.inflight[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.inflight[key]--; b.inflight[key] <= 0 {
				delete(b.inflight, key)
			}
		})
	}
}

// Record adds the penalty for ev to src.
func (b *PenaltyBox) Record(src netip.Addr, ev PenaltyEvent) {
	if !b.charges(src, ev) {
		return
	}
	d := b.duration(ev)
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock()
	if b.until == nil {
		b.until = make(map[netip.Prefix]penalty)
	}
	b.gcLocked(now)
	key := sourceBlock(src)
	cur, tracked := b.until[key]
	if !tracked && b.MaxSources > 0 && len(b.until) >= b.MaxSources {
		b.overrun++
		return
	}
	if !cur.until.After(now) {
		cur.until, cur.active = now, false
	}
	cur.earned = b.addToRecord(cur.earned, d)
	cur.last = now
	cur.until = cur.until.Add(d)
	if b.Max > 0 && cur.until.Sub(now) > b.Max {
		cur.until = now.Add(b.Max)
	}
	if cur.until.Sub(now) >= b.Min {
		cur.active = true
	}
	b.until[key] = cur
}

// duration is the penalty ev adds.
func (b *PenaltyBox) duration(ev PenaltyEvent) time.Duration {
	switch ev {
	case PenaltyAuthFail:
		return b.AuthFail
	case PenaltyNoAuth:
		return b.NoAuth
	case PenaltyGraceExceeded:
		return b.GraceExceeded
	}
	return 0
}

// charges reports whether Record(src, ev) adds a penalty: src is not
// exempt and ev's penalty is not off.
func (b *PenaltyBox) charges(src netip.Addr, ev PenaltyEvent) bool {
	return !b.Exempt.Contains(src) && b.duration(ev) > 0
}

// Refused notes that a connection from src was refused at accept. It adds
// NoAuth to the source's record, not to its penalty: refusing a
// connection never prolongs a source's exclusion, but a source that keeps
// knocking while refused ranks its password checks behind those of
// sources that do not. Without it, a storm source that gets in with one
// guess each time its penalty drains would look as new as a source that
// never came before.
func (b *PenaltyBox) Refused(src netip.Addr) {
	if b.Exempt.Contains(src) || b.NoAuth <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock()
	if b.until == nil {
		b.until = make(map[netip.Prefix]penalty)
	}
	b.gcLocked(now)
	key := sourceBlock(src)
	cur, tracked := b.until[key]
	if !tracked && b.MaxSources > 0 && len(b.until) >= b.MaxSources {
		b.overrun++
		return
	}
	cur.earned = b.addToRecord(cur.earned, b.NoAuth)
	cur.last = now
	b.until[key] = cur
}

// addToRecord adds d to a record, which stays below Max (if set) so that
// it cannot grow without end.
func (b *PenaltyBox) addToRecord(record, d time.Duration) time.Duration {
	if b.Max > 0 {
		return min(record+d, b.Max)
	}
	return record + d
}

// gcLocked drops entries whose penalty has drained and whose record is
// older than Max (or Min, if Max is 0), at most once a second, so the
// table does not grow with sources that stopped misbehaving.
func (b *PenaltyBox) gcLocked(now time.Time) {
	if now.Sub(b.lastGC) < time.Second {
		return
	}
	b.lastGC = now
	keep := b.Max
	if keep <= 0 {
		keep = b.Min
	}
	for k, p := range b.until {
		if !p.until.After(now) && now.Sub(p.last) >= keep {
			delete(b.until, k)
		}
	}
}

// PrefixList is a set of address prefixes; a nil list contains nothing.
type PrefixList struct{ prefixes []netip.Prefix }

// ParsePrefixList parses addresses and CIDR prefixes ("127.0.0.1",
// "::1", "10.0.0.0/8").
func ParsePrefixList(items []string) (*PrefixList, error) {
	l := &PrefixList{}
	for _, s := range items {
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			l.prefixes = append(l.prefixes, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, &PrefixError{Item: s}
		}
		l.prefixes = append(l.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return l, nil
}

// PrefixError reports an exempt-list entry that is neither an address nor
// a prefix.
type PrefixError struct{ Item string }

func (e *PrefixError) Error() string {
	return "server: " + e.Item + " is not an IP address or CIDR prefix"
}

// Contains reports whether a is in the list.
func (l *PrefixList) Contains(a netip.Addr) bool {
	if l == nil {
		return false
	}
	a = a.Unmap()
	for _, p := range l.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// cryptoRoll returns a uniform-enough number in 0..99. The project keeps
// math/rand out of non-test code, so even this coin comes from crypto/rand.
func cryptoRoll() int {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return int(binary.LittleEndian.Uint32(b[:]) % 100)
}

// refusalLog logs refused connections at a bounded rate. During a storm a
// server refuses thousands of connections a second; a log line each makes
// the log the bottleneck (a pipe to a slow reader blocks every writer), so
// that refusals wait for the log and the refused connections stay open
// meanwhile. Per reason, the first refusal of each interval is logged with
// its source as it happens, and the others are counted and logged as one
// line at the interval's end, with their number in "count".
type refusalLog struct {
	log      *slog.Logger
	interval time.Duration

	mu     sync.Mutex
	counts map[string]int // refusals by reason in this interval
	timer  bool           // a flush is scheduled
}

func newRefusalLog(log *slog.Logger, interval time.Duration) *refusalLog {
	return &refusalLog{log: log, interval: interval, counts: make(map[string]int)}
}

// note counts a refusal for reason and reports whether it is the first of
// its reason in this interval, which the caller logs on a line of its own;
// the interval's flush line counts the others.
func (r *refusalLog) note(reason string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.counts[reason]
	r.counts[reason] = n + 1
	if !r.timer {
		r.timer = true
		time.AfterFunc(r.interval, r.flush)
	}
	return n == 0
}

// flush logs the refusals of the interval that were not logged one by
// one, and starts a new interval.
func (r *refusalLog) flush() {
	r.mu.Lock()
	counts := r.counts
	r.counts = make(map[string]int)
	r.timer = false
	r.mu.Unlock()
	for reason, n := range counts {
		if n > 1 {
			r.log.Info("connection refused", "reason", reason, "count", n-1, "within", r.interval)
		}
	}
}
