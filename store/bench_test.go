package store

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The benchmarks share one database of a million messages, made once per
// run (its generation time is logged) and removed at the end:
//
//	go test ./store -run '^$' -bench 'Open|History|Search' -benchtime 2000x
//	go test ./store -run '^$' -bench GroupCommit -benchtime 200000x
//
// Each latency benchmark reports its p50 and p99 as metrics; ns/op is
// their mean. Group commit needs many messages to reach a steady state:
// a few thousand fit in three batches. Nothing here asserts on time.

const (
	benchMessages = 1_000_000
	benchRooms    = 100
)

var (
	benchOnce sync.Once
	benchDir  string
	benchPath string
	benchErr  error
	benchGen  time.Duration
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// vocabulary is a few thousand made-up words; message texts draw from it
// with a Zipf law, as real chat does, so a few words are in most messages
// and most words are rare.
var vocabulary = func() []string {
	syl := []string{"ka", "lo", "mi", "ne", "tur", "sa", "pe", "ri", "go", "zu", "vin", "dal", "or", "em", "qui", "bra"}
	r := rand.New(rand.NewPCG(7, 7))
	seen := map[string]bool{}
	var out []string
	for len(out) < 4000 {
		var b strings.Builder
		for range 1 + r.IntN(3) {
			b.WriteString(syl[r.IntN(len(syl))])
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}()

func benchText(r *rand.Rand, z *rand.Zipf) string {
	var b strings.Builder
	for i := range 3 + r.IntN(12) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocabulary[z.Uint64()])
	}
	return b.String()
}

func benchRoom(i int) string { return fmt.Sprintf("#room%d", i) }

// benchDB makes the shared database: the schema through Open, then the
// rows in large transactions with synchronous=OFF, which is what makes a
// million rows take seconds rather than minutes. The rows and indexes are
// the ones Append writes.
func benchDB(b *testing.B) string {
	benchOnce.Do(func() {
		start := time.Now()
		benchDir, benchErr = os.MkdirTemp("", "securechat-store-bench")
		if benchErr != nil {
			return
		}
		benchPath = filepath.Join(benchDir, "chat.db")
		var s *Store
		if s, benchErr = Open(benchPath, nil); benchErr != nil {
			return
		}
		s.Close()
		benchErr = fillBench(benchPath)
		benchGen = time.Since(start)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	b.Logf("%d messages generated in %v (once per run)", benchMessages, benchGen.Round(time.Millisecond))
	return benchPath
}

func fillBench(path string) error {
	db, err := sql.Open("sqlite", dsn(path, "_pragma=synchronous(OFF)"))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	r := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(r, 1.1, 1, uint64(len(vocabulary)-1))
	base := time.Now().Add(-30 * 24 * time.Hour).UnixMilli()
	const perTx = 50_000
	for id := 1; id <= benchMessages; {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		st, err := tx.Prepare(`INSERT INTO messages (id, conv, ts, kind, sender, recipient, body, queued) VALUES (?, ?, ?, ?, ?, ?, ?, 0)`)
		if err != nil {
			return err
		}
		first := id
		for end := id + perTx; id < end && id <= benchMessages; id++ {
			m := Message{Kind: KindMsg, Room: benchRoom(r.IntN(benchRooms)), From: fmt.Sprintf("user%d", r.IntN(500))}
			if id%20 == 0 {
				m = Message{Kind: KindDM, From: m.From, To: fmt.Sprintf("user%d", r.IntN(500))}
			}
			if _, err := st.Exec(id, m.conversation(), base+int64(id)*2, m.Kind, m.From, m.To, benchText(r, z)); err != nil {
				return err
			}
		}
		st.Close()
		// Indexed as the writer does it, one statement per batch.
		if _, err := tx.Exec(`INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages WHERE id >= ? AND +conv GLOB '#*'`, first); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	_, err = db.Exec(`UPDATE meta SET value = ? WHERE key = 'last_id'; PRAGMA wal_checkpoint(TRUNCATE); PRAGMA optimize`, benchMessages)
	return err
}

// latencies times f b.N times and reports p50 and p99 in microseconds.
func latencies(b *testing.B, f func(r *rand.Rand)) {
	r := rand.New(rand.NewPCG(3, 4))
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		t := time.Now()
		f(r)
		d = append(d, time.Since(t))
	}
	b.StopTimer()
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkOpen1M is the start-up cost: Open, Load, Close over a million
// messages. It also reports the database's size per message.
func BenchmarkOpen1M(b *testing.B) {
	path := benchDB(b)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := Open(path, nil)
		if err != nil {
			b.Fatal(err)
		}
		st, err := s.Load()
		if err != nil || st.LastID != benchMessages {
			b.Fatalf("Load = %d, %v", st.LastID, err)
		}
		s.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/open")
	b.ReportMetric(float64(fi.Size())/benchMessages, "db-bytes/msg")
}

func BenchmarkHistory50(b *testing.B) {
	s, err := Open(benchDB(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	latencies(b, func(r *rand.Rand) {
		before := uint64(0)
		if r.IntN(2) == 0 { // half page back: /history before ID
			before = uint64(1 + r.IntN(benchMessages))
		}
		ms, err := s.History(benchRoom(r.IntN(benchRooms)), before, 50)
		if err != nil || (before == 0 && len(ms) != 50) {
			b.Fatalf("History = %d messages, %v", len(ms), err)
		}
	})
}

// BenchmarkSearch searches one or two words (drawn like message words, so
// often common ones) over the five rooms of a user.
func BenchmarkSearch(b *testing.B) {
	s, err := Open(benchDB(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	zr := rand.New(rand.NewPCG(5, 6))
	z := rand.NewZipf(zr, 1.1, 1, uint64(len(vocabulary)-1))
	found := 0
	defer func() {
		if found == 0 {
			b.Error("no search found anything: the index is empty")
		}
	}()
	latencies(b, func(r *rand.Rand) {
		q := vocabulary[z.Uint64()]
		if r.IntN(2) == 0 {
			q += " " + vocabulary[z.Uint64()]
		}
		rooms := make([]string, 5)
		for i := range rooms {
			rooms[i] = benchRoom(r.IntN(benchRooms))
		}
		ms, err := s.Search(q, rooms, 0, 50)
		if err != nil {
			b.Fatal(err)
		}
		found += len(ms)
	})
}

// BenchmarkGroupCommit appends as fast as one producer can (a hub never
// waits) to a fresh database and reports committed messages per second.
func BenchmarkGroupCommit(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "chat.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(1, 1))
	z := rand.NewZipf(r, 1.1, 1, uint64(len(vocabulary)-1))
	texts := make([]string, 1024)
	for i := range texts {
		texts[i] = benchText(r, z)
	}
	var wg sync.WaitGroup
	done := func(err error) {
		if err != nil {
			b.Error(err)
		}
		wg.Done()
	}
	// Timed by hand: b.Loop stops the clock when it ends, before the
	// last commits, which would count queued messages as stored.
	start := time.Now()
	for id := uint64(1); id <= uint64(b.N); id++ {
		wg.Add(1)
		m := Message{ID: id, Time: time.Now(), Kind: KindMsg, Room: benchRoom(int(id % 10)), From: "bench", Text: texts[id%1024]}
		for s.Append(m, done) != nil {
			time.Sleep(100 * time.Microsecond)
		}
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(s.Stats().Committed)/float64(s.Stats().Batches), "msgs/batch")
}

// BenchmarkPrune1M times one retention step (pruneChunk messages over the
// per-room limit, with their search index entries): how long the writer,
// and every Append behind it, waits while retention runs. It deletes from
// the shared database, so it comes last.
func BenchmarkPrune1M(b *testing.B) {
	s, err := Open(benchDB(b), &Options{MaxPerRoom: 1000, PruneEvery: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// The database has some 900 chunks over the limit; time at most 50
	// whatever -benchtime says, so that later runs find work too.
	steps := min(b.N, 50)
	start := time.Now()
	for range steps {
		n, err := s.Prune(time.Now())
		if err != nil || n != pruneChunk {
			b.Fatalf("Prune = %d, %v; want a full chunk of %d", n, err, pruneChunk)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(steps), "ms/chunk")
}
