package handshake

import (
	"crypto/aes"
	stdcipher "crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"

	"securechat/cipher"
)

// sealRecord is an independent implementation of PROTOCOL.md §9 sealing,
// written from the text with crypto primitives only, to check the record
// layer against and to make known-answer records.
func sealRecord(encKey, macKey []byte, seq uint64, typ cipher.RecordType, iv, payload []byte) []byte {
	padLen := 16 - len(payload)%16
	pt := make([]byte, len(payload)+padLen)
	copy(pt, payload)
	for i := len(payload); i < len(pt); i++ {
		pt[i] = byte(padLen)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		panic(err)
	}
	ct := make([]byte, len(pt))
	stdcipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, pt)
	length := uint32(len(iv) + len(ct))

	rec := []byte{byte(typ)}
	rec = binary.BigEndian.AppendUint32(rec, length)
	rec = append(rec, iv...)
	rec = append(rec, ct...)

	m := hmac.New(sha256.New, macKey)
	m.Write([]byte("SCv1 rec"))
	m.Write(binary.BigEndian.AppendUint64(nil, seq))
	m.Write(rec[:5])
	m.Write(rec[5:])
	return m.Sum(rec)
}
