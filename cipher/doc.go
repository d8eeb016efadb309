// Package cipher is the securechat record layer (PROTOCOL.md §9, §11, §12):
// AES-256-CBC with HMAC-SHA-256 in encrypt-then-MAC order over any reliable
// byte stream.
//
// The one rule: nothing is decrypted before its MAC verifies, and every
// failure looks the same. A record whose length bounds, tag, padding, type or
// form is wrong, or that would exceed a key usage limit, yields [ErrBadRecord]
// and nothing else: no bytes are sent to the peer, the transport is aborted,
// and every later read and write fails with the same error.
//
// # Receiving
//
// [Conn.ReadRecord] checks the 5-byte header bounds before it reads the body,
// reads the body with io.ReadFull into the connection's read buffer (its own
// 512 bytes, or for a larger record a buffer borrowed from a pool until the
// next read, so that an idle connection holds no 16 KiB buffer), compares
// the full 32-byte tag with hmac.Equal, and only then decrypts in place and
// strips the PKCS#7 padding. A plaintext over [MaxPlaintext] is bad even
// though the largest length field leaves room for 15 more bytes.
//
// What the record layer itself enforces of the state machine (PROTOCOL.md
// §10.3) is the part it can know:
//   - unknown record types are bad;
//   - the payload must have its type's wire form (§9.2 step 6): KEY_UPDATE
//     and CLOSE empty, FINISHED 32 bytes, AUTH_RESULT one byte 0x00 or 0x01,
//     AUTH lengths that add up exactly;
//   - before [Conn.SetEstablished]: FINISHED, AUTH, AUTH_RESULT and CLOSE are
//     accepted and returned to the caller; APP and KEY_UPDATE are bad, and so
//     is a CLOSE as the first record, where only FINISHED may be (a CLOSE
//     there is not answered);
//   - after [Conn.SetEstablished]: APP and CLOSE are returned, KEY_UPDATE is
//     handled inside, FINISHED, AUTH and AUTH_RESULT are bad.
//
// The handshake checks which of the pre-login types it expects at each step,
// which direction may send it, and what the fields mean; when it rejects a
// record it calls [Conn.Abort], which fails the connection exactly as a bad
// record does.
//
// # Sending
//
// Every record gets a fresh IV from crypto/rand. The sender rekeys on its own
// (PROTOCOL.md §11) before a hard limit could be reached and after the soft
// limits of [Options], but only once established, because KEY_UPDATE is
// illegal before. Write errors are sticky, since a partly written record
// breaks the framing.
//
// # Concurrency
//
// As in crypto/tls, each direction has its own lock, sequence number and keys.
// One goroutine may read while any number of goroutines write.
package cipher
