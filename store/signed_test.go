package store

import (
	"database/sql"
	"path/filepath"
	"testing"
)

// signedMsg is m with the signature fields a client would send (their
// values do not matter to the store, which keeps them unchanged).
func signedMsg(m Message) Message {
	m.Key = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="
	m.Sig = "c2lnbmF0dXJlIG9mIHNpeHR5LWZvdXIgYnl0ZXMgZm9yIHRoZSBzdG9yZSB0ZXN0cyB0byBrZWVwIHVuY2hhbmdlZA=="
	m.Ctr = 1764470000000000 + m.ID
	m.Cts = 1764470000000
	return m
}

func sameSig(a, b Message) bool {
	return a.Key == b.Key && a.Sig == b.Sig && a.Ctr == b.Ctr && a.Cts == b.Cts
}

// A signed message comes back from history, DM history and the offline
// queue with its signature fields unchanged, and an unsigned one without
// any (PROTOCOL.md §13.16.4).
func TestSignedFieldsKept(t *testing.T) {
	forEachStore(t, nil, func(t *testing.T, s *Store) {
		room := signedMsg(roomMsg(1, "#a", "alice", "signed"))
		plain := roomMsg(2, "#a", "bob", "unsigned")
		queued := signedMsg(dm(3, "alice", "bob", "signed dm", true))
		appendAll(t, s, room, plain, queued)
		hist, err := s.History("#a", 0, 10)
		if err != nil || len(hist) != 2 {
			t.Fatalf("History = %v, %v", hist, err)
		}
		if !sameSig(hist[0], room) {
			t.Errorf("signed room message read back as %+v, want %+v", hist[0], room)
		}
		if !sameSig(hist[1], Message{}) {
			t.Errorf("unsigned room message read back with signature fields: %+v", hist[1])
		}
		pend, err := s.Pending("bob", 10)
		if err != nil || len(pend) != 1 || !sameSig(pend[0], queued) {
			t.Errorf("Pending = %+v, %v; want the signed DM unchanged", pend, err)
		}
		dms, err := s.DMHistory("alice", "bob", 0, 10)
		if err != nil || len(dms) != 1 || !sameSig(dms[0], queued) {
			t.Errorf("DMHistory = %+v, %v; want the signed DM unchanged", dms, err)
		}
	})
}

// A database written by a securechat that knew schema 1 opens: its
// messages read back unsigned, and new ones keep their signatures.
func TestMigrationFromV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(migrations[0]); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO messages (id, conv, ts, kind, sender, body) VALUES (1, '#a', 1764470000000, 'msg', 'alice', 'from v1')`,
		`INSERT INTO messages (id, conv, ts, kind, sender, recipient, body, queued) VALUES (2, '@alice bob', 1764470001000, 'dm', 'alice', 'bob', 'queued in v1', 1)`,
		`INSERT INTO pending (recipient, id) VALUES ('bob', 2)`,
		`UPDATE meta SET value = 2 WHERE key = 'last_id'`,
		`PRAGMA user_version = 1`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s := openT(t, path, nil)
	hist, err := s.History("#a", 0, 10)
	if err != nil || len(hist) != 1 || hist[0].Text != "from v1" || !sameSig(hist[0], Message{}) {
		t.Fatalf("v1 history after migration = %+v, %v; want the message, unsigned", hist, err)
	}
	if pend, err := s.Pending("bob", 10); err != nil || len(pend) != 1 || pend[0].Text != "queued in v1" || !sameSig(pend[0], Message{}) {
		t.Fatalf("v1 queue after migration = %+v, %v", pend, err)
	}
	signed := signedMsg(roomMsg(3, "#a", "alice", "signed in v2"))
	appendAll(t, s, signed)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, path, nil)
	defer s.Close()
	hist, err = s.History("#a", 0, 10)
	if err != nil || len(hist) != 2 || !sameSig(hist[0], Message{}) || !sameSig(hist[1], signed) {
		t.Fatalf("history after reopen = %+v, %v; want the v1 message unsigned, then the signed one", hist, err)
	}
	var v int
	db, err = sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != len(migrations) || v < 2 {
		t.Errorf("user_version = %d, %v; want %d", v, err, len(migrations))
	}
}
