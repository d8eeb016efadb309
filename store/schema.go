package store

// migrations are the schema, one step per version: migrations[i] takes a
// database from user_version i to i+1. Never edit a step that has shipped;
// add one.
var migrations = []string{
	// 1: messages with full-text search, queues, rooms, moderation, members.
	`
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value ANY NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('last_id', 0), ('motd', '');

-- conv is the room ('#name') or, for a direct message, '@a b' with the two
-- accounts in name order. ts is Unix milliseconds. queued is 1 for a direct
-- message that was stored for an offline recipient.
CREATE TABLE messages (
	id        INTEGER PRIMARY KEY,
	conv      TEXT NOT NULL,
	ts        INTEGER NOT NULL,
	kind      TEXT NOT NULL,
	sender    TEXT NOT NULL,
	recipient TEXT NOT NULL DEFAULT '',
	body      TEXT NOT NULL,
	queued    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_conv ON messages (conv, id);

-- Only room messages are searchable; the index holds no copy of the text.
-- The writer indexes each batch with one INSERT ... SELECT rather than a
-- trigger: FTS5 flushes its pending terms at every statement, so a row at
-- a time would write a segment per message and spend its time merging.
CREATE VIRTUAL TABLE messages_fts USING fts5 (body, content = 'messages', content_rowid = 'id');
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.conv GLOB '#*' BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;

-- Direct messages waiting for an offline account.
CREATE TABLE pending (
	recipient TEXT NOT NULL,
	id        INTEGER NOT NULL,
	PRIMARY KEY (recipient, id)
) WITHOUT ROWID;
CREATE TRIGGER messages_pending_delete AFTER DELETE ON messages WHEN old.queued BEGIN
	DELETE FROM pending WHERE recipient = old.recipient AND id = old.id;
END;

CREATE TABLE rooms (
	name  TEXT PRIMARY KEY,
	topic TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

-- kind is 'ban' or 'mute'; until is Unix milliseconds, 0 for until lifted.
CREATE TABLE restrictions (
	kind   TEXT NOT NULL,
	user   TEXT NOT NULL,
	until  INTEGER NOT NULL,
	by     TEXT NOT NULL,
	reason TEXT NOT NULL,
	PRIMARY KEY (kind, user)
) WITHOUT ROWID;

CREATE TABLE members (
	user TEXT NOT NULL,
	room TEXT NOT NULL,
	PRIMARY KEY (user, room)
) WITHOUT ROWID;

CREATE TABLE last_read (
	user TEXT NOT NULL,
	room TEXT NOT NULL,
	id   INTEGER NOT NULL,
	PRIMARY KEY (user, room)
) WITHOUT ROWID;
`,
	// 2: the signature fields of signed messages (PROTOCOL.md §13.16),
	// NULL for an unsigned message and for every message stored before.
	`
ALTER TABLE messages ADD COLUMN sig_key TEXT;
ALTER TABLE messages ADD COLUMN sig     TEXT;
ALTER TABLE messages ADD COLUMN sig_ctr INTEGER;
ALTER TABLE messages ADD COLUMN sig_cts INTEGER;
`,
}
