package server

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// acquireAsync starts an Acquire and reports its grant (or error) on the
// returned channel. It waits until the call is queued or granted.
func acquireAsync(t *testing.T, q *CheckQueue, ctx context.Context, src string) chan func() {
	t.Helper()
	granted := make(chan func(), 1)
	go func() {
		release, err := q.Acquire(ctx, netip.MustParseAddr(src))
		if err != nil {
			close(granted)
			return
		}
		granted <- release
	}()
	synctest.Wait()
	return granted
}

func isGranted(c chan func()) bool {
	select {
	case r, ok := <-c:
		if ok {
			c <- r // put it back for the caller
		}
		return ok
	default:
		return false
	}
}

// TestCheckQueueOnePerSource: a source's second check waits for its first
// even while a slot is free, the free slot goes to another source, and a
// third check that would queue behind the waiting one is refused.
func TestCheckQueueOnePerSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &CheckQueue{Concurrency: 2, PerSource: 1}
		ctx := context.Background()
		a1 := acquireAsync(t, q, ctx, "192.0.2.1")
		a2 := acquireAsync(t, q, ctx, "192.0.2.1")
		if !isGranted(a1) || isGranted(a2) {
			t.Fatalf("first check granted=%v, second=%v; want only the first", isGranted(a1), isGranted(a2))
		}
		if _, err := q.Acquire(ctx, netip.MustParseAddr("192.0.2.1")); !errors.Is(err, ErrSourceBusy) {
			t.Fatalf("third check of a source with one waiting: %v, want ErrSourceBusy", err)
		}
		b1 := acquireAsync(t, q, ctx, "192.0.2.2")
		if !isGranted(b1) {
			t.Fatal("other source not given the free slot")
		}
		(<-a1)()
		synctest.Wait()
		if !isGranted(a2) {
			t.Fatal("second check of the source not granted after the first ended")
		}
		(<-a2)()
		(<-b1)()
		if len(q.sources) != 0 || q.running != 0 {
			t.Errorf("queue not empty after all checks: %d sources, %d running", len(q.sources), q.running)
		}
	})
}

// TestCheckQueueFairOrder: a free slot goes to the waiting source with
// the lowest score (nearest to no penalty), and among equals to the one
// served least recently, then to the one that came first.
func TestCheckQueueFairOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		scores := map[netip.Prefix]time.Duration{
			sourceBlock(netip.MustParseAddr("192.0.2.66")): 10 * time.Second,
		}
		q := &CheckQueue{Concurrency: 1, score: func(k netip.Prefix) time.Duration { return scores[k] }}
		ctx := context.Background()
		type waiter struct {
			name string
			c    chan func()
		}
		var waiting []waiter
		add := func(name, src string) {
			waiting = append(waiting, waiter{name, acquireAsync(t, q, ctx, src)})
		}
		runNext := func() string {
			synctest.Wait()
			var granted []waiter
			for _, w := range waiting {
				if isGranted(w.c) {
					granted = append(granted, w)
				}
			}
			if len(granted) != 1 {
				t.Fatalf("%d checks running at once with Concurrency 1", len(granted))
			}
			(<-granted[0].c)()
			waiting = slices.DeleteFunc(waiting, func(w waiter) bool { return w.name == granted[0].name })
			return granted[0].name
		}
		add("x1", "192.0.2.9") // runs at once
		add("x2", "192.0.2.9") // waits behind x1
		add("p1", "192.0.2.66")
		add("a1", "192.0.2.1")
		add("b1", "192.0.2.2")
		add("c1", "2001:db8::1")
		var order []string
		order = append(order, runNext()) // x1
		order = append(order, runNext()) // a1: never served, first of a1 b1 c1
		add("a2", "192.0.2.1")           // a was just served
		for len(waiting) > 0 {
			order = append(order, runNext())
		}
		// x2 waits behind sources never served; a2 behind x2, served
		// before a1; p1, penalised, goes last.
		want := []string{"x1", "a1", "b1", "c1", "x2", "a2", "p1"}
		if !slices.Equal(order, want) {
			t.Errorf("served %v, want %v", order, want)
		}
	})
}

// TestCheckQueueNoPerSourceCap: with PerSource 0 a source's checks all
// wait their turn, one running at a time, none refused.
func TestCheckQueueNoPerSourceCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &CheckQueue{Concurrency: 2}
		ctx := context.Background()
		var cs []chan func()
		for range 5 {
			cs = append(cs, acquireAsync(t, q, ctx, "192.0.2.1"))
		}
		for i, c := range cs {
			synctest.Wait()
			for j, d := range cs[i:] {
				if got := isGranted(d); got != (j == 0) {
					t.Fatalf("check %d granted=%v while check %d is next", i+j, got, i)
				}
			}
			(<-c)()
		}
	})
}

// TestCheckQueueExemptFirst: exempt checks go before all others and are
// not held to one per source.
func TestCheckQueueExemptFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		exempt, _ := ParsePrefixList([]string{"127.0.0.2"})
		q := &CheckQueue{Concurrency: 2, Exempt: exempt}
		ctx := context.Background()
		h1 := acquireAsync(t, q, ctx, "192.0.2.1")
		h2 := acquireAsync(t, q, ctx, "192.0.2.2")
		other := acquireAsync(t, q, ctx, "192.0.2.3")
		e1 := acquireAsync(t, q, ctx, "127.0.0.2")
		e2 := acquireAsync(t, q, ctx, "127.0.0.2")
		// e1 runs at once in the exempt sources' own slot, with both
		// shared slots busy; e2 waits for a slot, but before other.
		if !isGranted(e1) || isGranted(e2) {
			t.Fatalf("exempt granted %v %v with the shared slots busy; want the first at once, in the exempt slot",
				isGranted(e1), isGranted(e2))
		}
		(<-h1)()
		synctest.Wait()
		if !isGranted(e2) || isGranted(other) {
			t.Fatalf("freed slot: exempt granted %v, other %v; want the exempt check first", isGranted(e2), isGranted(other))
		}
		(<-e1)() // the exempt slot is not a shared one
		synctest.Wait()
		if isGranted(other) {
			t.Fatal("a check from elsewhere ran in the exempt sources' own slot")
		}
		(<-h2)()
		synctest.Wait()
		if !isGranted(other) {
			t.Fatal("waiting check not served once a shared slot was free")
		}
		(<-e2)()
		(<-other)()
	})
}

// TestCheckQueueWaitEndsWithContext: a queued check gives up when its
// context's deadline (the login grace time) passes, and leaves nothing
// behind that would hold up its source.
func TestCheckQueueWaitEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &CheckQueue{Concurrency: 1}
		hold := acquireAsync(t, q, context.Background(), "192.0.2.1")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			_, err := q.Acquire(ctx, netip.MustParseAddr("192.0.2.2"))
			errc <- err
		}()
		synctest.Wait()
		time.Sleep(30 * time.Second)
		synctest.Wait()
		select {
		case err := <-errc:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("queued check: %v, want context.DeadlineExceeded", err)
			}
		default:
			t.Fatal("queued check still waiting after its deadline")
		}
		(<-hold)()
		next := acquireAsync(t, q, context.Background(), "192.0.2.2")
		if !isGranted(next) {
			t.Fatal("the source's next check is held up by an abandoned one")
		}
		(<-next)()
		if _, err := q.Acquire(ctx, netip.MustParseAddr("192.0.2.3")); err == nil {
			t.Error("Acquire with an ended context succeeded")
		}
	})
}

// TestCheckQueueLeavesACore: by default checks use all cores but one.
func TestCheckQueueLeavesACore(t *testing.T) {
	q := &CheckQueue{}
	n := runtime.GOMAXPROCS(0)
	if got := q.limit(); got != max(1, n-1) {
		t.Errorf("default concurrency %d with GOMAXPROCS %d, want %d", got, n, max(1, n-1))
	}
}

// TestCheckQueueRecordRanksBehindNewSource: a source whose penalty has
// drained still ranks behind a source that never failed, with one check in
// flight each: otherwise a storm whose sources wait out their penalties in
// turn keeps a new source waiting behind their guesses.
func TestCheckQueueRecordRanksBehindNewSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Unix(1000, 0)
		pen := DefaultPenaltyBox()
		pen.now = func() time.Time { return now }
		storm := netip.MustParseAddr("198.51.100.7")
		pen.Record(storm, PenaltyAuthFail)
		now = now.Add(pen.AuthFail) // drained: no penalty left
		if _, _, blocked := pen.Blocked(storm); blocked {
			t.Fatal("storm source still blocked")
		}
		q := &CheckQueue{Concurrency: 1, PerSource: 1, score: pen.rank}
		ctx := context.Background()
		begin := func(src string) chan func() {
			pen.beginCheck(netip.MustParseAddr(src))
			return acquireAsync(t, q, ctx, src)
		}
		running := begin("203.0.113.1")
		guess := begin(storm.String()) // waits first
		fresh := begin("192.0.2.1")    // waits second
		(<-running)()
		synctest.Wait()
		if !isGranted(fresh) || isGranted(guess) {
			t.Fatalf("fresh granted %v, storm guess granted %v: want the source without a record first",
				isGranted(fresh), isGranted(guess))
		}
		(<-fresh)()
		synctest.Wait()
		if !isGranted(guess) {
			t.Fatal("the storm's guess never ran")
		}
		(<-guess)()
	})
}

// TestCheckQueueRecordShare: checks from sources with a record run one at
// a time and, after each, wait until the slot has rested 1/RecordShare - 1
// times as long as it ran (here 3 s after a 1 s check), while a source
// without a record is served at once. Time is the test bubble's clock.
func TestCheckQueueRecordShare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pen := DefaultPenaltyBox()
		storm1, storm2 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
		for range 3 {
			pen.Record(storm1, PenaltyAuthFail) // 15 s earned: Min
		}
		for range 15 {
			pen.Refused(storm2) // refused at accept 15 times: no penalty, 15 s of record
		}
		// Neither a mistyped password nor a few refusals at accept make a
		// record that counts against the share.
		typo, fresh := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.1")
		pen.Record(typo, PenaltyAuthFail)
		for range 3 {
			pen.Refused(fresh)
		}
		for _, c := range []struct {
			src  netip.Addr
			want bool
		}{{storm1, true}, {storm2, true}, {typo, false}, {fresh, false}} {
			if got := pen.hasRecord(sourceBlock(c.src)); got != c.want {
				t.Fatalf("hasRecord(%v) = %v, want %v", c.src, got, c.want)
			}
		}
		q := &CheckQueue{Concurrency: 2, PerSource: 1, RecordShare: 0.25, score: pen.rank, record: pen.hasRecord}
		ctx := context.Background()
		first := acquireAsync(t, q, ctx, storm1.String())
		second := acquireAsync(t, q, ctx, storm2.String())
		if !isGranted(first) || isGranted(second) {
			t.Fatalf("first storm check granted %v, second %v: want one check with a record at a time",
				isGranted(first), isGranted(second))
		}
		time.Sleep(time.Second)
		(<-first)()
		synctest.Wait()
		if isGranted(second) {
			t.Fatal("a check with a record started without the slot resting")
		}
		clean := acquireAsync(t, q, ctx, fresh.String())
		if !isGranted(clean) {
			t.Fatal("a source without a record waited for the record share")
		}
		(<-clean)()
		time.Sleep(3*time.Second - time.Millisecond)
		synctest.Wait()
		if isGranted(second) {
			t.Fatal("the check with a record started before 3 s of rest")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if !isGranted(second) {
			t.Fatal("the check with a record never started after the rest")
		}
		(<-second)()
	})
}

// TestCheckQueueRecordShareOff: with RecordShare 1 checks from sources
// with a record are not held back.
func TestCheckQueueRecordShareOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &CheckQueue{Concurrency: 2, PerSource: 1, RecordShare: 1, record: func(netip.Prefix) bool { return true }}
		ctx := context.Background()
		a := acquireAsync(t, q, ctx, "198.51.100.1")
		b := acquireAsync(t, q, ctx, "198.51.100.2")
		if !isGranted(a) || !isGranted(b) {
			t.Fatalf("granted %v and %v, want both", isGranted(a), isGranted(b))
		}
		(<-a)()
		(<-b)()
	})
}
