// Package credstore holds securechat's accounts: it parses and rewrites
// creds.txt and verifies passwords against Argon2id (and imported bcrypt)
// hashes.
//
// The one rule: a creds file is used whole or not at all. Every line is
// parsed strictly, every cost is checked against a ceiling, and only then
// are the accounts put in force, at load and at reload alike. Writes follow
// the same rule on disk: the file is replaced atomically under a lock, so
// readers see the old file or the new one, never a mix.
//
// # File format
//
// One account per line, in the style of htpasswd and shadow:
//
//	name:$argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>
//	name:$argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>:admin
//
// Names match [NamePattern]. The hash is a PHC string (argon2id, version 19,
// decimal parameters in the order m,t,p, salt of 8 to 48 bytes and hash of
// 12 to 64 bytes in unpadded standard base64) or a bcrypt string ($2a$,
// $2b$, $2y$) kept for import. Lines whose first non-blank character is #
// and blank lines are comments, kept as written by every edit.
//
// # Hash upgrades
//
// At a successful login, a bcrypt hash or an Argon2id hash whose memory or
// passes are below the store's default parameters is replaced by a fresh
// Argon2id hash at the defaults; only that line of the file changes.
package credstore

import "securechat/handshake"

// ErrAuthFailed is wrapped by every error [Store.Verify] returns for an
// unknown user or a wrong password. It is handshake.ErrAuthFailed, so the
// server tells a refused login from an internal failure with either name.
var ErrAuthFailed = handshake.ErrAuthFailed

var _ handshake.Verifier = (*Store)(nil)
