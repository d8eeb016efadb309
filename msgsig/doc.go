// Package msgsig signs and verifies chat messages end to end
// (PROTOCOL.md §13.16).
//
// The one rule: a message is shown as verified only if the sender's own
// key signed exactly what is shown (kind, room or recipient, sender, text)
// and the key is the one this client pinned for that user on that server;
// the server relays signatures but can never make one, so nothing the
// server alone can do (forge, strip, replay, swap keys) ends as verified.
//
// The package has three parts:
//
//   - the signed bytes of a message ([Message]), [Sign] and [Verify];
//   - the known_users file, where a client pins each user's key on first
//     sight as known_hosts pins host keys ([KnownUsers], [AddKnownUser],
//     [RevokeKnownUser], [RemoveKnownUser]);
//   - a [Verifier], which judges each incoming message against the pins
//     and the counters already seen, and says [Verified], [Unsigned] or
//     [Failed] with a [Reason].
//
// It knows nothing about sockets, the hub or the terminal.
package msgsig
