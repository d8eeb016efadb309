package store

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Open opens (creating it if needed) the database at path, brings its
// schema up to date and starts the writer. The file and its -wal and -shm
// companions have mode 0600: they hold private messages.
//
// Open fails with a clear error when the directory is missing or not
// writable, the disk is full, the file is not a securechat database, or
// its schema is newer than this program. Close the Store when done.
//
// The database is in WAL mode with synchronous=FULL: a commit returns only
// after the log is on stable storage, so a message whose callback got nil
// survives a killed process and a power cut. Group commit pays that fsync
// once per batch rather than once per message.
func Open(path string, opts *Options) (*Store, error) {
	d, lastID, err := openSQLite(path, opts)
	if err != nil {
		return nil, err
	}
	return newStore(d, opts, lastID), nil
}

type sqliteDB struct {
	path    string
	options Options // retention
	w       *sql.DB // one connection: the writer goroutine's
	r       *sql.DB // readers; WAL lets them run beside the writer

	insertMsg, insertPending, indexFrom, lastIDStmt *sql.Stmt
	historyStmt, pendingStmt                        *sql.Stmt
}

func dsn(path string, query ...string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(0)")
	for _, p := range query {
		k, v, _ := strings.Cut(p, "=")
		q.Add(k, v)
	}
	// SQLite reads a "file:" name as a URI: escape the path, or a '%', '?'
	// or '#' in a directory name would change what is opened.
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func openSQLite(path string, opts *Options) (d *sqliteDB, lastID uint64, err error) {
	path = filepath.Clean(path) // "//x" would be a URI authority
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return nil, 0, fmt.Errorf("store: state directory: %w", err)
	} else if !fi.IsDir() {
		return nil, 0, fmt.Errorf("store: state directory %s is not a directory", dir)
	}
	// Create the file ourselves, so that it has mode 0600 from the first
	// byte; SQLite gives the -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("store: cannot open the database for writing: %w (is the state directory read-only?)", err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		err = f.Chmod(0o600)
	}
	f.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("store: %s: %w", path, err)
	}

	d = &sqliteDB{path: path}
	if opts != nil {
		d.options = *opts
	}
	defer func() {
		if err != nil {
			d.close()
			err = openError(path, err)
		}
	}()
	if d.w, err = sql.Open("sqlite", dsn(path, "_txlock=immediate")); err != nil {
		return d, 0, err
	}
	d.w.SetMaxOpenConns(1)
	d.w.SetConnMaxIdleTime(0)
	var mode string
	if err = d.w.QueryRow("PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		return d, 0, err
	}
	if mode != "wal" {
		return d, 0, fmt.Errorf("cannot switch to WAL mode (journal_mode is %s)", mode)
	}
	if opts != nil && opts.maxPages > 0 {
		if _, err = d.w.Exec(fmt.Sprintf("PRAGMA max_page_count=%d", opts.maxPages)); err != nil {
			return d, 0, err
		}
	}
	if err = d.migrate(); err != nil {
		return d, 0, err
	}
	// Write something now, so that a full disk or a read-only file is
	// found at start rather than at the first message.
	if _, err = d.w.Exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('opened', ?)`, time.Now().UnixMilli()); err != nil {
		return d, 0, err
	}
	var metaLast, maxID int64
	if err = d.w.QueryRow(`SELECT (SELECT value FROM meta WHERE key = 'last_id'), coalesce((SELECT max(id) FROM messages), 0)`).Scan(&metaLast, &maxID); err != nil {
		return d, 0, err
	}
	lastID = uint64(max(metaLast, maxID))

	for _, s := range []struct {
		p **sql.Stmt
		q string
	}{
		{&d.insertMsg, `INSERT INTO messages (id, conv, ts, kind, sender, recipient, body, queued, sig_key, sig, sig_ctr, sig_cts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&d.insertPending, `INSERT INTO pending (recipient, id) VALUES (?, ?)`},
		{&d.indexFrom, `INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages WHERE id >= ? AND +conv GLOB '#*'`},
		{&d.lastIDStmt, `UPDATE meta SET value = max(value, ?) WHERE key = 'last_id'`},
	} {
		if *s.p, err = d.w.Prepare(s.q); err != nil {
			return d, 0, err
		}
	}

	if d.r, err = sql.Open("sqlite", dsn(path, "_pragma=query_only(1)")); err != nil {
		return d, 0, err
	}
	d.r.SetMaxOpenConns(4)
	d.r.SetMaxIdleConns(4)
	if d.historyStmt, err = d.r.Prepare(`SELECT ` + msgColumns + ` FROM messages m WHERE conv = ? AND id < ? ORDER BY id DESC LIMIT ?`); err != nil {
		return d, 0, err
	}
	if d.pendingStmt, err = d.r.Prepare(`SELECT ` + msgColumns + ` FROM pending p JOIN messages m ON m.id = p.id WHERE p.recipient = ? ORDER BY p.id LIMIT ?`); err != nil {
		return d, 0, err
	}
	return d, lastID, nil
}

// openError says what went wrong at open in words an operator can act on.
func openError(path string, err error) error {
	switch code := sqliteCode(err); code {
	case sqlite3.SQLITE_FULL:
		return &diskFullError{fmt.Sprintf("store: %s: disk full: free some space and start again (%v)", path, err)}
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
		return fmt.Errorf("store: %s: cannot write the database (is the disk or the file read-only?): %v", path, err)
	case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
		return fmt.Errorf("store: %s: not a securechat database, or damaged: %v", path, err)
	}
	return fmt.Errorf("store: %s: %w", path, err)
}

// diskFullError is an ErrDiskFull with its own words, so that the message
// does not say "store:" twice.
type diskFullError struct{ msg string }

func (e *diskFullError) Error() string { return e.msg }
func (e *diskFullError) Unwrap() error { return ErrDiskFull }

// sqliteCode returns the primary SQLite result code in err, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code() & 0xff
	}
	return 0
}

// writeError marks a full disk so callers can tell the sender.
func writeError(err error) error {
	if err != nil && sqliteCode(err) == sqlite3.SQLITE_FULL {
		return fmt.Errorf("%w: %v", ErrDiskFull, err)
	}
	return err
}

// errNewerSchema is wrapped when the database comes from a newer program.
var errNewerSchema = errors.New("database schema is newer than this program")

func (d *sqliteDB) migrate() error {
	var v int
	if err := d.w.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("%w: database schema version %d is newer than this securechat (%d): upgrade securechat",
			errNewerSchema, v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		tx, err := d.w.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("schema migration %d: %w", v+1, err)
		}
		// PRAGMA takes no parameters; v is an int we control.
		if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("schema migration %d: %w", v+1, err)
		}
	}
	return nil
}

func (d *sqliteDB) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{d.insertMsg, d.insertPending, d.indexFrom, d.lastIDStmt, d.historyStmt, d.pendingStmt} {
		if s != nil {
			s.Close()
		}
	}
	if d.r != nil {
		errs = append(errs, d.r.Close())
	}
	if d.w != nil {
		// A last checkpoint keeps the -wal file small between runs.
		d.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
		errs = append(errs, d.w.Close())
	}
	return errors.Join(errs...)
}

func (d *sqliteDB) apply(ops []*op) {
	err := d.applyTx(ops)
	if err == nil {
		return
	}
	if len(ops) == 1 {
		ops[0].err = writeError(err)
		return
	}
	// One bad change must not cost the others: retry them one by one.
	for _, o := range ops {
		o.err = writeError(d.applyTx([]*op{o}))
	}
}

func (d *sqliteDB) applyTx(ops []*op) error {
	tx, err := d.w.Begin()
	if err != nil {
		return err
	}
	// Bind the prepared statements to this transaction once, not per row.
	w := &txStmts{Tx: tx, insertMsg: tx.Stmt(d.insertMsg), insertPending: tx.Stmt(d.insertPending), indexFrom: tx.Stmt(d.indexFrom)}
	var top, firstRoomMsg uint64
	for _, o := range ops {
		o.deleted = 0
		if err := d.exec(w, o); err != nil {
			tx.Rollback()
			return err
		}
		top = max(top, o.msg.ID, o.id*boolToU64(o.kind == opLastID))
		if o.kind == opAppend && o.msg.Kind != KindDM && firstRoomMsg == 0 {
			firstRoomMsg = o.msg.ID
		}
	}
	if firstRoomMsg > 0 {
		// Ids increase, so the batch's room messages are all those from
		// its first one on. The + keeps SQLite on the rowid range rather
		// than the conv index, which would scan every room message.
		if _, err := w.indexFrom.Exec(int64(firstRoomMsg)); err != nil {
			tx.Rollback()
			return err
		}
	}
	if top > 0 {
		if _, err := tx.Stmt(d.lastIDStmt).Exec(int64(top)); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

func boolToU64(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

type txStmts struct {
	*sql.Tx
	insertMsg, insertPending, indexFrom *sql.Stmt
}

func (d *sqliteDB) exec(tx *txStmts, o *op) error {
	var err error
	switch o.kind {
	case opAppend:
		m := &o.msg
		key, sig, ctr, cts := sigColumns(m)
		_, err = tx.insertMsg.Exec(int64(m.ID), m.conversation(), m.Time.UnixMilli(), m.Kind, m.From, m.To, m.Text, m.Queued,
			key, sig, ctr, cts)
		if err == nil && m.Queued && m.Kind == KindDM {
			_, err = tx.insertPending.Exec(m.To, int64(m.ID))
		}
	case opMOTD:
		_, err = tx.Exec(`UPDATE meta SET value = ? WHERE key = 'motd'`, o.text)
	case opTopic:
		_, err = tx.Exec(`INSERT INTO rooms (name, topic) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET topic = excluded.topic`, o.room, o.text)
	case opAddRoom:
		_, err = tx.Exec(`INSERT OR IGNORE INTO rooms (name) VALUES (?)`, o.room)
	case opRemoveRoom:
		_, err = tx.Exec(`DELETE FROM rooms WHERE name = ?`, o.room)
	case opBan, opMute:
		var until int64
		if !o.r.Until.IsZero() {
			until = o.r.Until.UnixMilli()
		}
		_, err = tx.Exec(`INSERT OR REPLACE INTO restrictions (kind, user, until, by, reason) VALUES (?, ?, ?, ?, ?)`,
			restrictionKind(o.kind), o.r.User, until, o.r.By, o.r.Reason)
	case opUnban, opUnmute:
		_, err = tx.Exec(`DELETE FROM restrictions WHERE kind = ? AND user = ?`, restrictionKind(o.kind), o.user)
	case opJoin:
		_, err = tx.Exec(`INSERT OR IGNORE INTO members (user, room) VALUES (?, ?)`, o.user, o.room)
	case opPart:
		_, err = tx.Exec(`DELETE FROM members WHERE user = ? AND room = ?`, o.user, o.room)
	case opLastRead:
		_, err = tx.Exec(`INSERT INTO last_read (user, room, id) VALUES (?, ?, ?)
			ON CONFLICT (user, room) DO UPDATE SET id = max(id, excluded.id)`, o.user, o.room, int64(o.id))
	case opDelivered:
		_, err = tx.Exec(`DELETE FROM pending WHERE recipient = ? AND id <= ?`, o.user, int64(min(o.id, maxID)))
	case opDeleteUser:
		for _, q := range []string{
			`DELETE FROM messages WHERE kind = 'dm' AND (sender = ?1 OR recipient = ?1)`,
			`DELETE FROM pending WHERE recipient = ?1`,
			`DELETE FROM members WHERE user = ?1`,
			`DELETE FROM last_read WHERE user = ?1`,
		} {
			if _, err = tx.Exec(q, o.user); err != nil {
				break
			}
		}
	case opLastID, opSync:
		// opLastID is written with the batch's top id, in applyTx.
	case opPrune:
		o.deleted, err = d.prune(tx.Tx, o.now)
	default:
		err = fmt.Errorf("unknown change %v", o.kind)
	}
	return err
}

func restrictionKind(k opKind) string {
	if k == opBan || k == opUnban {
		return "ban"
	}
	return "mute"
}

// prune runs retention inside the writer's transaction. Ids grow with time,
// so the messages older than the cutoff are the first ones in id order:
// the scan stops at the first young one instead of reading the table.
func (d *sqliteDB) prune(tx *sql.Tx, now time.Time) (int, error) {
	opts := d.opts()
	total := 0
	if opts.Retention > 0 {
		cutoff := now.Add(-opts.Retention).UnixMilli()
		res, err := tx.Exec(`DELETE FROM messages WHERE id IN (
			SELECT id FROM messages
			WHERE id < coalesce((SELECT id FROM messages WHERE ts >= ?1 ORDER BY id LIMIT 1), 9223372036854775807)
			  AND NOT (queued AND id IN (SELECT id FROM pending))
			ORDER BY id LIMIT ?2)`, cutoff, pruneChunk)
		if err != nil {
			return 0, err
		}
		n, _ := res.RowsAffected()
		total += int(n)
	}
	if opts.MaxPerRoom > 0 {
		// Walk the rooms through the index: one seek per room.
		room := "#"
		for total < pruneChunk {
			var next string
			err := tx.QueryRow(`SELECT conv FROM messages WHERE conv > ? AND conv GLOB '#*' ORDER BY conv LIMIT 1`, room).Scan(&next)
			if errors.Is(err, sql.ErrNoRows) {
				break
			} else if err != nil {
				return total, err
			}
			room = next
			var keep int64
			err = tx.QueryRow(`SELECT id FROM messages WHERE conv = ? ORDER BY id DESC LIMIT 1 OFFSET ?`, room, opts.MaxPerRoom-1).Scan(&keep)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			} else if err != nil {
				return total, err
			}
			res, err := tx.Exec(`DELETE FROM messages WHERE id IN (
				SELECT id FROM messages WHERE conv = ? AND id < ? ORDER BY id LIMIT ?)`, room, keep, pruneChunk-total)
			if err != nil {
				return total, err
			}
			n, _ := res.RowsAffected()
			total += int(n)
		}
	}
	_, err := tx.Exec(`DELETE FROM restrictions WHERE until != 0 AND until <= ?`, now.UnixMilli())
	return total, err
}

func (d *sqliteDB) opts() Options { return d.options }

const msgColumns = `m.id, m.ts, m.kind, m.conv, m.sender, m.recipient, m.body, m.queued, m.sig_key, m.sig, m.sig_ctr, m.sig_cts`

// sigColumns are the values of sig_key, sig, sig_ctr and sig_cts for m:
// NULL for an unsigned message, so that it reads back as one.
func sigColumns(m *Message) (key, sig, ctr, cts any) {
	if m.Sig == "" {
		return nil, nil, nil, nil
	}
	return m.Key, m.Sig, int64(m.Ctr), int64(m.Cts)
}

func scanMessages(rows *sql.Rows, err error) ([]Message, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var m Message
		var id, ts int64
		var conv string
		var key, sig sql.NullString
		var ctr, cts sql.NullInt64
		if err := rows.Scan(&id, &ts, &m.Kind, &conv, &m.From, &m.To, &m.Text, &m.Queued, &key, &sig, &ctr, &cts); err != nil {
			return nil, err
		}
		m.Key, m.Sig, m.Ctr, m.Cts = key.String, sig.String, uint64(ctr.Int64), uint64(cts.Int64)
		m.ID = uint64(id)
		m.Time = time.UnixMilli(ts).UTC()
		if m.Kind != KindDM {
			m.Room = conv
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (d *sqliteDB) history(conv string, before uint64, n int) ([]Message, error) {
	out, err := scanMessages(d.historyStmt.Query(conv, int64(before), n))
	slices.Reverse(out)
	return out, err
}

func (d *sqliteDB) pending(user string, n int) ([]Message, error) {
	return scanMessages(d.pendingStmt.Query(user, n))
}

func (d *sqliteDB) search(words []string, rooms []string, before uint64, n int) ([]Message, error) {
	var match strings.Builder
	for i, w := range words {
		if i > 0 {
			match.WriteByte(' ')
		}
		// A quoted string is one term to FTS5, so no word is read as an
		// operator (AND, NEAR, column filters).
		match.WriteString(`"` + strings.ReplaceAll(w, `"`, `""`) + `"`)
	}
	args := []any{match.String(), int64(before)}
	for _, r := range rooms {
		args = append(args, r)
	}
	args = append(args, n)
	q := `SELECT ` + msgColumns + ` FROM messages_fts f JOIN messages m ON m.id = f.rowid
		WHERE messages_fts MATCH ? AND f.rowid < ? AND m.conv IN (?` + strings.Repeat(", ?", len(rooms)-1) + `)
		ORDER BY f.rowid DESC LIMIT ?`
	return scanMessages(d.r.Query(q, args...))
}

func (d *sqliteDB) userRooms(user string) ([]string, error) {
	rows, err := d.r.Query(`SELECT room FROM members WHERE user = ? ORDER BY room`, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (d *sqliteDB) lastRead(user string) (map[string]uint64, error) {
	rows, err := d.r.Query(`SELECT room, id FROM last_read WHERE user = ?`, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]uint64)
	for rows.Next() {
		var r string
		var id int64
		if err := rows.Scan(&r, &id); err != nil {
			return nil, err
		}
		out[r] = uint64(id)
	}
	return out, rows.Err()
}

func (d *sqliteDB) countAfter(room string, id uint64) (int, error) {
	var n int
	err := d.r.QueryRow(`SELECT count(*) FROM messages WHERE conv = ? AND id > ?`, room, int64(min(id, maxID))).Scan(&n)
	return n, err
}

func (d *sqliteDB) load(now time.Time) (State, error) {
	var st State
	if err := d.r.QueryRow(`SELECT value FROM meta WHERE key = 'motd'`).Scan(&st.MOTD); err != nil {
		return st, err
	}
	rows, err := d.r.Query(`SELECT name, topic FROM rooms ORDER BY name`)
	if err != nil {
		return st, err
	}
	for rows.Next() {
		var r Room
		if err := rows.Scan(&r.Name, &r.Topic); err != nil {
			rows.Close()
			return st, err
		}
		st.Rooms = append(st.Rooms, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	rows, err = d.r.Query(`SELECT kind, user, until, by, reason FROM restrictions ORDER BY kind, user`)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		var kind string
		var until int64
		var r Restriction
		if err := rows.Scan(&kind, &r.User, &until, &r.By, &r.Reason); err != nil {
			return st, err
		}
		if until != 0 {
			r.Until = time.UnixMilli(until).UTC()
		}
		if !r.Active(now) {
			continue
		}
		if kind == "ban" {
			st.Bans = append(st.Bans, r)
		} else {
			st.Mutes = append(st.Mutes, r)
		}
	}
	return st, rows.Err()
}

// FileName is the chat database's name in a server's state directory.
const FileName = "chat.db"

// DeleteUserFile deletes what the database at path keeps of an account
// that was just deleted (see DeleteUser). A missing database has nothing
// to delete: it reports false and no error. A running server may hold the
// database: SQLite lets both write, one at a time.
func DeleteUserFile(path, user string) (bool, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	st, err := Open(path, nil)
	if err != nil {
		return false, fmt.Errorf("the account is deleted, but not its direct messages: %w", err)
	}
	if err := st.DeleteUser(user); err != nil {
		st.Close()
		return false, err
	}
	if err := st.Close(); err != nil {
		return false, fmt.Errorf("deleting the direct messages of %s: %w", user, err)
	}
	return true, nil
}
