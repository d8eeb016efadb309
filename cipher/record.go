package cipher

import (
	"crypto/aes"
	stdcipher "crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"time"
)

// Wire sizes of PROTOCOL.md §9.
const (
	headerLen     = 5 // type u8 | length u32
	ivLen         = aes.BlockSize
	tagLen        = sha256.Size
	maxCiphertext = MaxPlaintext + aes.BlockSize // PKCS#7 always adds 1..16 bytes
	minLength     = ivLen + aes.BlockSize        // IV and one padded block
	maxLength     = ivLen + maxCiphertext
	maxRecordLen  = headerLen + maxLength + tagLen
)

// Hard key usage limits per direction and generation (PROTOCOL.md §11,
// RFC 4344 §3.1-3.2).
const (
	protocolMaxRecords = 1 << 31
	protocolMaxBlocks  = 1 << 32
	// A sender must always keep room for the KEY_UPDATE that ends a generation:
	// one record of one block, sent while seq < maxRecords-1. These floors
	// keep a lowered limit usable.
	minMaxRecords = 3
	minMaxBlocks  = maxCiphertext/aes.BlockSize + 1
)

// macLabel starts every MAC input, so a record tag cannot be confused with
// any other HMAC computed under a related key.
var macLabel = [8]byte{'S', 'C', 'v', '1', ' ', 'r', 'e', 'c'}

// cbcMode is the CBC implementation of crypto/cipher, which can change its IV
// in place so one instance serves a whole key generation without allocating.
type cbcMode interface {
	stdcipher.BlockMode
	SetIV([]byte)
}

func newCBC(block stdcipher.Block, encrypt bool) cbcMode {
	var zero [aes.BlockSize]byte
	var m stdcipher.BlockMode
	if encrypt {
		m = stdcipher.NewCBCEncrypter(block, zero[:])
	} else {
		m = stdcipher.NewCBCDecrypter(block, zero[:])
	}
	cm, ok := m.(cbcMode)
	if !ok {
		panic("cipher: crypto/cipher CBC mode cannot reset its IV")
	}
	return cm
}

// recordMAC is HMAC-SHA-256 state reused for every record of one generation.
type recordMAC struct {
	h   hash.Hash
	sum [tagLen]byte
}

func newRecordMAC(key []byte) *recordMAC {
	return &recordMAC{h: hmac.New(sha256.New, key)}
}

func (m *recordMAC) reset()         { m.h.Reset() }
func (m *recordMAC) write(b []byte) { m.h.Write(b) }
func (m *recordMAC) appendTag(dst []byte) []byte {
	return m.h.Sum(dst)
}

// verify reports in constant time whether tag is the full expected tag.
func (m *recordMAC) verify(tag []byte) bool {
	got := m.h.Sum(m.sum[:0])
	return hmac.Equal(got, tag)
}

// padPKCS7 fills buf[n:] with PKCS#7 padding; len(buf)-n must be 1..16.
func padPKCS7(buf []byte, n int) {
	p := byte(len(buf) - n)
	for i := n; i < len(buf); i++ {
		buf[i] = p
	}
}

// unpadPKCS7 strips PKCS#7 padding. It runs only on MAC-verified data
// (PROTOCOL.md §9.2 step 5), so its timing leaks nothing an attacker chose.
func unpadPKCS7(b []byte) ([]byte, bool) {
	if len(b) == 0 || len(b)%aes.BlockSize != 0 {
		return nil, false
	}
	n := int(b[len(b)-1])
	if n == 0 || n > aes.BlockSize {
		return nil, false
	}
	for _, x := range b[len(b)-n:] {
		if int(x) != n {
			return nil, false
		}
	}
	return b[:len(b)-n], true
}

// limits are the resolved key usage limits of one connection.
type limits struct {
	maxRecords  uint64
	maxBlocks   uint64
	rekeyBytes  int64
	rekeyPeriod time.Duration
	onRekey     func(sent bool)
}

// rekeyed reports a move to the next key generation to Options.OnRekey.
func (l *limits) rekeyed(sent bool) {
	if l.onRekey != nil {
		l.onRekey(sent)
	}
}

// halfConn is one direction of a connection: its lock, sequence number, key
// generation and first permanent error.
type halfConn struct {
	sync.Mutex
	err error // first permanent error

	encrypt bool
	cbc     cbcMode
	mac     *recordMAC
	next    [32]byte // d_secret_(n+1), the only secret kept for this direction

	gen      uint64    // key generation n of PROTOCOL.md §8
	seq      uint64    // records opened or sealed under this generation
	blocks   uint64    // AES blocks of ciphertext under this generation
	bytes    int64     // wire bytes under this generation, for the soft limit
	genStart time.Time // when this generation was installed

	seqBuf [16]byte // macLabel || seq u64, kept here so it never escapes per record

	// decrypts counts CBC decryptions; tests use it to prove that no
	// unverified record is ever decrypted.
	decrypts uint64
}

// install makes secret the current generation of this direction and keeps
// only the next generation's secret. The caller clears its own copy.
func (hc *halfConn) install(secret []byte) {
	enc, mac, next := DeriveKeys(secret)
	block, err := aes.NewCipher(enc[:])
	if err != nil {
		panic("cipher: aes: " + err.Error()) // a 32-byte key cannot fail
	}
	hc.cbc = newCBC(block, hc.encrypt)
	hc.mac = newRecordMAC(mac[:])
	clear(enc[:])
	clear(mac[:])
	hc.next = next
	clear(next[:])
	hc.seq, hc.blocks, hc.bytes = 0, 0, 0
	hc.genStart = time.Now()
	copy(hc.seqBuf[:8], macLabel[:])
}

// rotate installs the next generation (PROTOCOL.md §11) and erases its secret.
func (hc *halfConn) rotate() {
	secret := hc.next
	hc.install(secret[:])
	clear(secret[:])
	hc.gen++
}

// macHeader feeds the record-independent MAC prefix: label and seq.
func (hc *halfConn) macHeader() {
	binary.BigEndian.PutUint64(hc.seqBuf[8:], hc.seq)
	hc.mac.reset()
	hc.mac.write(hc.seqBuf[:])
}

// sealedLen is the wire size of a record carrying n plaintext bytes.
func sealedLen(n int) int {
	return headerLen + ivLen + (n/aes.BlockSize+1)*aes.BlockSize + tagLen
}

// seal appends one record with a fresh random IV to dst.
func (hc *halfConn) seal(dst []byte, t RecordType, payload []byte) []byte {
	return hc.sealWithIV(dst, t, payload, nil)
}

// sealWithIV appends one record to dst; iv nil means a fresh IV from
// crypto/rand. A fixed IV exists only for known-answer tests. The caller has
// checked len(payload) <= MaxPlaintext and the key usage limits.
func (hc *halfConn) sealWithIV(dst []byte, t RecordType, payload, iv []byte) []byte {
	ctLen := (len(payload)/aes.BlockSize + 1) * aes.BlockSize
	length := ivLen + ctLen
	total := headerLen + length + tagLen
	start := len(dst)
	if cap(dst)-start < total {
		grown := make([]byte, start, 2*cap(dst)+total)
		copy(grown, dst)
		dst = grown
	}
	rec := dst[start : start+total]
	rec[0] = byte(t)
	binary.BigEndian.PutUint32(rec[1:headerLen], uint32(length))
	ivb := rec[headerLen : headerLen+ivLen]
	if iv == nil {
		rand.Read(ivb)
	} else {
		copy(ivb, iv)
	}
	ct := rec[headerLen+ivLen : headerLen+length]
	copy(ct, payload)
	padPKCS7(ct, len(payload))
	hc.cbc.SetIV(ivb)
	hc.cbc.CryptBlocks(ct, ct)

	hc.macHeader()
	hc.mac.write(rec[:headerLen+length])
	hc.mac.appendTag(rec[:headerLen+length])

	hc.seq++
	hc.blocks += uint64(ctLen / aes.BlockSize)
	hc.bytes += int64(total)
	return dst[:start+total]
}

// checkHeader applies PROTOCOL.md §9 bounds to the 5-byte header alone.
func checkHeader(hdr []byte) (length int, ok bool) {
	l := binary.BigEndian.Uint32(hdr[1:headerLen])
	if l < minLength || l > maxLength || (l-ivLen)%aes.BlockSize != 0 {
		return 0, false
	}
	return int(l), true
}

// open verifies and decrypts one complete record (header, IV, CT, TAG) in
// place. Every failure returns ok false and nothing else: which check failed
// is not observable. lim are the receiver's hard limits.
func (hc *halfConn) open(rec []byte, lim *limits) (t RecordType, payload []byte, ok bool) {
	if len(rec) < headerLen {
		return 0, nil, false
	}
	length, ok := checkHeader(rec[:headerLen])
	if !ok || len(rec) != headerLen+length+tagLen {
		return 0, nil, false
	}
	body := rec[:headerLen+length]
	hc.macHeader()
	hc.mac.write(body)
	if !hc.mac.verify(rec[headerLen+length:]) {
		return 0, nil, false
	}
	ctLen := length - ivLen
	blocks := uint64(ctLen / aes.BlockSize)
	if hc.seq >= lim.maxRecords || hc.blocks+blocks > lim.maxBlocks {
		return 0, nil, false
	}

	// Only now, with the tag verified, is the ciphertext decrypted.
	hc.decrypts++
	ct := rec[headerLen+ivLen : headerLen+length]
	hc.cbc.SetIV(rec[headerLen : headerLen+ivLen])
	hc.cbc.CryptBlocks(ct, ct)
	payload, ok = unpadPKCS7(ct)
	// The length field leaves room for up to 16399 bytes under a short
	// padding; §9.2 step 5 caps every plaintext at MaxPlaintext, so a larger
	// one is the same failure as bad padding and never reaches a caller.
	if !ok || len(payload) > MaxPlaintext {
		return 0, nil, false
	}
	hc.seq++
	hc.blocks += blocks
	hc.bytes += int64(len(rec))
	return RecordType(rec[0]), payload, true
}
