// Package cluster links securechat nodes through NATS with JetStream, so
// that several nodes serve one chat: a replicated log of room and direct
// messages ([Conn.Publish], [Conn.Follow]), the state all nodes must agree
// on (bans, mutes, topics, the MOTD: [Conn.Shared]) and who is online where
// ([Conn.Presence]). It knows nothing of sessions, commands or the store;
// the chat service calls it and applies what it delivers.
//
// The one rule: the log is the record, and every node's store is a view of
// it. A message exists once [Conn.Publish] has returned its sequence, and
// not before: acknowledge it to its sender then, and show it to readers
// (on this node too) when a [Follower] delivers it, so every node sees every
// room in the same order, the order of the stream sequence, which is also
// the message id clients see. A node that restarts follows the log from one
// past the last sequence its store holds and so catches up on what it
// missed.
//
// # Security of the link
//
// [Connect] refuses a plaintext or unauthenticated link to any NATS server
// off loopback unless [Options.Insecure] says otherwise: give TLS (a CA
// file, and a client certificate where the servers verify clients) and
// NATS credentials (a creds file or an NKey seed file, mode 0600).
//
// # Failures
//
// The connection reconnects to any listed server for as long as it is open.
// Publish retries with the same message id until its context ends, and
// JetStream's duplicate window stores a retried message once. Followers and
// watchers resume where they were after a reconnect or a NATS server
// failure; a node that misses heartbeats is reported offline within
// PresenceOptions.Missed intervals.
package cluster
