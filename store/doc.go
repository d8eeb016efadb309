// Package store keeps what the securechat chat service must remember across
// restarts: room and direct messages, direct messages waiting for an
// offline account, bans and mutes, topics, the MOTD, the room list, each
// account's rooms and last-read positions. [Open] keeps it in one SQLite
// database (pure Go, no cgo) in WAL mode; [OpenMemory] keeps it in memory,
// for tests and for servers that run without a writable disk. Both are the
// same [Store] and pass the same tests.
//
// The one rule: a caller never waits for the disk. Every change is queued
// and returns at once; one writer goroutine commits whatever has queued up
// while the previous commit ran as a single transaction (group commit), and
// then calls each [Store.Append] callback in order. A message is durable
// (it survives kill -9 and, with synchronous=FULL, power loss) from the
// moment its callback got a nil error, and not before: send the
// acknowledgement to the sender only then.
//
// Reads ([Store.History], [Store.Search], ...) block while they query, are
// safe from any goroutine and run beside the writer (WAL readers do not
// wait for it). A single-owner hub therefore runs them on a goroutine of
// their own, or at login before the session is attached, and posts the
// result back to its loop.
//
// The store knows nothing of chat rules: it does not check names, lengths
// or permissions. It does check one thing, because a restart depends on
// it: message ids must increase. [Store.LastID] says where to go on.
package store
