// Package handshake is the securechat key exchange, server authentication
// and login (PROTOCOL.md §4-§8, §10), plus host keys and known_hosts.
//
// The one rule: nothing secret flows before the server has proved itself.
// The client checks the Ed25519 signature over the transcript, the host key
// (HostKeyCallback, usually a known_hosts file with OpenSSH semantics) and
// the server's FINISHED, and only then records a new host key
// (HostKeyVerified), sends its own FINISHED and asks for the password. Any
// of those checks failing is a *ServerAuthError, never a lost connection. The server accepts nothing but FINISHED and then AUTH
// until login succeeds.
//
// # Steps
//
// [Client] and [Server] are written as short lists of named steps, each
// returning an error (like crypto/tls's handshake state). Every read and
// write has a deadline (StepTimeout); the whole server side also runs under
// LoginGraceTime. A message that is not the one the state expects ends the
// connection; the only message sent in the clear about an error is the
// server's ABORT for a CLIENT_HELLO it cannot accept (PROTOCOL.md §4).
//
// # Key exchange
//
// Three groups: mlkem768x25519 (the TLS X25519MLKEM768 construction, ML-KEM
// first), x25519 and ffdhe3072 (RFC 7919), which a server allows only when
// ServerConfig.Groups lists it. Peer values are validated as
// PROTOCOL.md §6 requires: exact lengths, the ML-KEM modulus check, no
// all-zero X25519 secret, 1 < Y < p-1 and K not in {1, p-1}.
//
// # Erasing secrets
//
// The shared secret, PRK, Finished keys, traffic secrets handed to the record
// layer, passwords and our own random scalars are cleared after use. Go
// cannot erase everything: crypto/ecdh and crypto/mlkem private keys, the
// internal states of crypto/hkdf and crypto/hmac, math/big temporaries of
// the ffdhe3072 exponentiation (which is also not constant time), and copies
// the garbage collector or the stack may have made are out of reach. The
// handshake drops its references to all of them as soon as the key schedule
// has run.
package handshake
