package msgsig

import (
	"crypto/ed25519"
	"errors"
)

// ErrBadSignature is what CheckRequest returns for a signed request the
// server must refuse; the hub answers it with error code bad_signature.
var ErrBadSignature = errors.New("msgsig: bad signature")

// Signs reports whether a msg request carries any of the signature fields:
// then all of them must be right (PROTOCOL.md §13.16.4).
func Signs(sig string, ctr, cts uint64) bool { return sig != "" || ctr != 0 || cts != 0 }

// CheckRequest is the server's check of a signed msg request (PROTOCOL.md
// §13.16.4). key is the session's signing key (handshake.Session.UserKey,
// nil after a password login); f holds the request's kind, the room or
// recipient and the text after the server's own sanitising and name
// folding, the session's user name, and the request's ctr and cts; sig
// is the request's "sig". An error wraps ErrBadSignature and says why,
// for the server's log; the client gets only the code.
//
// Recipients do not depend on this check; it keeps what a client signed
// wrongly (a text it did not sanitise first, say) out of every history,
// at the cost of one verification per message, not per recipient.
func CheckRequest(key ed25519.PublicKey, f *Fields, sig string) error {
	if len(key) != ed25519.PublicKeySize {
		return errors.Join(ErrBadSignature, errors.New("msgsig: a signed message from a session that logged in without a key"))
	}
	s, err := DecodeSig(sig)
	if err != nil {
		return errors.Join(ErrBadSignature, err)
	}
	if err := f.check(); err != nil {
		return errors.Join(ErrBadSignature, err)
	}
	if !Verify(key, f, s) {
		return errors.Join(ErrBadSignature, errors.New("msgsig: the signature does not verify with the session's key over the message as the server would relay it"))
	}
	return nil
}
