package handshake

import (
	"crypto/rand"
	"slices"
)

// ReusedKeyShares are client key shares made once and offered again by every
// handshake of a ClientConfig that names them (ClientConfig.ReusedKeyShares).
//
// They exist for load generators. An attacker who opens thousands of
// connections a second to guess passwords, most of which the server refuses
// before its SERVER_HELLO, has no reason to make a fresh ML-KEM key pair for
// each: one CLIENT_HELLO's shares, kept, serve every connection, and the
// server cannot tell. securechat's storm benchmark does the same, so that
// it measures what the storm costs the server rather than what the key
// generation costs the machine the attacker shares with it.
//
// A share offered twice is no longer ephemeral: whoever learns its private
// key can read every session that used it, so forward secrecy between those
// sessions is gone. A real client never uses this.
type ReusedKeyShares struct {
	groups []Group
	shares []clientKeyShare
}

// NewReusedKeyShares makes one share for each of groups (nil means the
// client default), from crypto/rand.
func NewReusedKeyShares(groups []Group) (*ReusedKeyShares, error) {
	if len(groups) == 0 {
		groups = defaultClientGroups
	}
	if err := checkGroups(groups); err != nil {
		return nil, err
	}
	r := &ReusedKeyShares{groups: slices.Clone(groups)}
	for _, g := range r.groups {
		s, err := newClientKeyShare(g, rand.Reader)
		if err != nil {
			return nil, err
		}
		r.shares = append(r.shares, &reusedShare{clientKeyShare: s, pub: s.public()})
	}
	return r, nil
}

// Groups returns the groups the shares are for, in the order offered.
func (r *ReusedKeyShares) Groups() []Group { return slices.Clone(r.groups) }

// reusedShare is a share that survives the end of a handshake: the
// handshake's erase drops its own secrets, not the ones kept for the next.
// Its public half is encoded once.
type reusedShare struct {
	clientKeyShare
	pub []byte
}

func (s *reusedShare) public() []byte { return s.pub }
func (*reusedShare) erase()           {}
