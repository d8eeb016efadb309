package store

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func openT(t *testing.T, path string, opts *Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	s := openT(t, path, nil)
	appendAll(t, s, roomMsg(1, "#a", "alice", "hello world"), dm(2, "alice", "bob", "psst", true), roomMsg(3, "#a", "bob", "hi"))
	s.SetMOTD("motd")
	s.SetTopic("#a", "topic a")
	s.Ban(Restriction{User: "eve", By: "root", Reason: "r"})
	s.Mute(Restriction{User: "eve", Until: time.Now().Add(time.Hour).Truncate(time.Millisecond), By: "root"})
	s.Join("alice", "#a")
	s.SetLastRead("alice", "#a", 1)
	s.SetLastID(10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, path, nil)
	defer s.Close()
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if st.LastID != 10 || st.MOTD != "motd" || !slices.Equal(st.Rooms, []Room{{"#a", "topic a"}}) ||
		len(st.Bans) != 1 || st.Bans[0].Reason != "r" || len(st.Mutes) != 1 || st.Mutes[0].Until.IsZero() {
		t.Errorf("state after reopen = %+v", st)
	}
	if got, _ := s.History("#a", 0, 10); !slices.Equal(ids(got), []uint64{1, 3}) {
		t.Errorf("history after reopen = %v", ids(got))
	}
	if got, _ := s.Pending("bob", 100); !slices.Equal(ids(got), []uint64{2}) {
		t.Errorf("queue after reopen = %v", ids(got))
	}
	if got, _ := s.Search("world", []string{"#a"}, 0, 10); !slices.Equal(ids(got), []uint64{1}) {
		t.Errorf("search after reopen = %v", ids(got))
	}
	if r, _ := s.Rooms("alice"); !slices.Equal(r, []string{"#a"}) {
		t.Errorf("rooms after reopen = %v", r)
	}
	if lr, _ := s.LastRead("alice"); lr["#a"] != 1 {
		t.Errorf("last read after reopen = %v", lr)
	}
	if errs := appendErrs(t, s, roomMsg(9, "#a", "x", "below SetLastID")); !errors.Is(errs[0], ErrIDOrder) {
		t.Errorf("append below the reopened LastID: %v, want ErrIDOrder", errs[0])
	}
}

// An idle server whose retention deleted every message must still go on
// above the ids it gave out.
func TestLastIDSurvivesRetention(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	s := openT(t, path, &Options{Retention: time.Hour})
	appendAll(t, s, roomMsg(1, "#a", "x", "old"), roomMsg(2, "#a", "x", "old"))
	if n, err := s.Prune(t0.Add(48 * time.Hour)); err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2", n, err)
	}
	s.Close()
	s = openT(t, path, nil)
	defer s.Close()
	if id := s.LastID(); id != 2 {
		t.Errorf("LastID after an empty history = %d, want 2", id)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	openT(t, path, nil).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(path, nil)
	if err == nil {
		t.Fatal("Open accepted a database from a newer version")
	}
	for _, want := range []string{path, "database schema version 99 is newer than this securechat (2)", "upgrade securechat"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestFileModes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "chat.db")
	// A file left readable by others is tightened.
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := openT(t, path, nil)
	appendAll(t, s, roomMsg(1, "#a", "x", "private"))
	for _, name := range []string{"chat.db", "chat.db-wal", "chat.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for group and others", name, perm)
		}
	}
	s.Close()
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path, want string
	}{
		{"missing directory", filepath.Join(dir, "nope", "chat.db"), "state directory"},
		{"directory is a file", filepath.Join(notDir, "chat.db"), "is not a directory"},
		{"path is a directory", dir, "cannot open the database for writing"},
		{"not a database", garbage, "not a securechat database"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(c.path, nil)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "store: ") {
				t.Errorf("error %q, want one starting with \"store: \" that says %q", err, c.want)
			}
		})
	}
}

// A database that cannot grow stands in for a full disk: SQLite reports
// both as SQLITE_FULL.
func TestDiskFullAtOpen(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "chat.db"), &Options{maxPages: 3})
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "chat.db: disk full: free some space") || strings.Count(err.Error(), "store:") != 1 {
		t.Fatalf("Open on a full disk: %v, want ErrDiskFull with a hint", err)
	}
}

func TestDiskFullAtRunTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	s := openT(t, path, &Options{maxPages: 60})
	defer s.Close()
	big := strings.Repeat("x", 3000)
	var acked []uint64
	var full error
	for id := uint64(1); id <= 1000 && full == nil; id++ {
		err := appendErrs(t, s, roomMsg(id, "#a", "x", big))[0]
		switch {
		case err == nil:
			acked = append(acked, id)
		case errors.Is(err, ErrDiskFull):
			full = err
		default:
			t.Fatalf("append %d: %v, want nil or ErrDiskFull", id, err)
		}
	}
	if full == nil {
		t.Fatal("the database never filled up")
	}
	if len(acked) == 0 {
		t.Fatal("nothing fit before the disk was full")
	}
	// The store goes on: reads work, acknowledged messages are there,
	// small changes still fail loudly rather than hang.
	got, err := s.History("#a", 0, 1000)
	if err != nil {
		t.Fatalf("History on a full disk: %v", err)
	}
	if !slices.Equal(ids(got), acked) {
		t.Errorf("history on a full disk = %v, want the acknowledged %v", ids(got), acked)
	}
	next := acked[len(acked)-1] + 1
	if errs := appendErrs(t, s, roomMsg(next+1, "#a", "x", big)); !errors.Is(errs[0], ErrDiskFull) {
		t.Errorf("append on a full disk: %v, want ErrDiskFull", errs[0])
	}
	if err := s.Healthy(); !errors.Is(err, ErrDiskFull) {
		t.Errorf("Healthy on a full disk: %v, want ErrDiskFull", err)
	}
	// Space comes back: writing resumes without a restart.
	if _, err := s.b.(*sqliteDB).w.Exec("PRAGMA max_page_count = 100000"); err != nil {
		t.Fatal(err)
	}
	if errs := appendErrs(t, s, roomMsg(next+2, "#a", "x", big)); errs[0] != nil {
		t.Errorf("append once there is space again: %v", errs[0])
	}
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy once there is space again: %v", err)
	}
	acked = append(acked, next+2)
	s.Close()
	// After a restart, what was acknowledged is still there.
	s2 := openT(t, path, nil)
	defer s2.Close()
	if got, _ := s2.History("#a", 0, 1000); !slices.Equal(ids(got), acked) {
		t.Errorf("history after restart = %v, want %v", ids(got), acked)
	}
}

// The state directory may have any name: the path must reach SQLite as
// written, not decoded as a URI.
func TestOddPaths(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my state %41 ?mode=ro#x dir")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := "/" + filepath.Join(dir, "chat.db") // and a leading "//"
	s := openT(t, path, nil)
	appendAll(t, s, roomMsg(1, "#a", "x", "y"))
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, "chat.db")); err != nil {
		t.Fatalf("the database is not where it was asked to be: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("files made outside the state directory: %v", entries)
	}
}
