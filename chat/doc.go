// Package chat is the securechat chat service (rooms, direct messages,
// presence, history, moderation) and the codec of the chat layer that
// travels inside APP records (PROTOCOL.md §13).
//
// The one rule: this package knows nothing of sockets or cryptography. A
// session is any [Conn] that reads and writes whole messages; the server
// glue adapts the secure channel to it, and the tests use in-memory fakes.
//
// # Design
//
// One goroutine, the hub loop, owns every room, user and session. Requests
// reach it in the order each session sent them, and it appends every room
// event to the room's history and to each member's queue before it looks
// at the next request, so all members see one total order per room, and
// message ids (mid) increase across the whole hub.
//
// Each session has exactly one reader (the goroutine in [Hub.Serve]),
// which decodes requests and applies the flood limit, and one writer,
// which drains the session's bounded queue and coalesces whatever is
// pending into one [Conn.WriteMessages] call. The loop never blocks on a
// session: when a queue is full its events are dropped and counted, and a
// session whose queue stays full for [Config.SlowConsumerTimeout] is
// disconnected. No lock is shared between sessions.
//
// # Stored state
//
// With a [Config.Store] the hub keeps what must survive a restart
// (PROTOCOL.md §13.15) without ever waiting for a disk on its loop: a
// message is delivered at once and handed to the store, whose writer
// commits in groups; the sender's ack waits for the commit callback,
// which posts back to the loop. Reads a login needs (rooms, last-read
// positions, queued direct messages) run on the session's goroutine
// before it is attached; /history pages the ring holds come from it,
// older ones and /search from the store on a goroutine of their own.
//
// # Client side
//
// [EncodeRequest], [DecodeEvent], [ParseLine] and [SanitizeText] are what a
// terminal client or a bot needs; formatting is left to the client.
// ParseLine's errors are [*UsageError]s, to be shown as errors without
// sending anything. [Commands] lists what a server serves and
// [ClientCommands] what the client carries out itself; [HelpText] joins
// the two for a help reply.
package chat
