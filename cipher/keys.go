package cipher

import (
	"crypto/hkdf"
	"crypto/sha256"
)

// labelPrefix starts every HKDF label of PROTOCOL.md §8.
const labelPrefix = "securechat v1 "

// ExpandLabel returns HKDF-Expand(secret, label(name, context), 32) with
// SHA-256 and the label encoding of PROTOCOL.md §8:
//
//	u8(len("securechat v1 " || name)) || "securechat v1 " || name || u8(len(context)) || context
//
// The handshake uses it for the generation-0 traffic secrets, the Finished
// keys and the session id; the record layer uses it for per-generation keys.
// It panics if name or context is longer than a u8 length can describe, which
// only a programming error can cause.
func ExpandLabel(secret []byte, name string, context []byte) [32]byte {
	if len(labelPrefix)+len(name) > 255 || len(context) > 255 {
		panic("cipher: hkdf label too long")
	}
	info := make([]byte, 0, 2+len(labelPrefix)+len(name)+len(context))
	info = append(info, byte(len(labelPrefix)+len(name)))
	info = append(info, labelPrefix...)
	info = append(info, name...)
	info = append(info, byte(len(context)))
	info = append(info, context...)
	out, err := hkdf.Expand(sha256.New, secret, string(info), 32)
	if err != nil {
		// Only a length above 255*32 or a FIPS-only restriction can fail here.
		panic("cipher: hkdf expand: " + err.Error())
	}
	var k [32]byte
	copy(k[:], out)
	clear(out)
	return k
}

// DeriveKeys returns the keys of one direction and key generation from that
// generation's traffic secret d_secret_n (PROTOCOL.md §8):
//
//	enc  = HKDF-Expand(d_secret_n, label("enc",  ""), 32)   AES-256 key
//	mac  = HKDF-Expand(d_secret_n, label("mac",  ""), 32)   HMAC-SHA-256 key
//	next = HKDF-Expand(d_secret_n, label("next", ""), 32)   d_secret_(n+1)
//
// The caller owns the results and should clear them when done.
func DeriveKeys(secret []byte) (enc, mac, next [32]byte) {
	return ExpandLabel(secret, "enc", nil), ExpandLabel(secret, "mac", nil), ExpandLabel(secret, "next", nil)
}
