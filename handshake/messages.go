package handshake

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
)

// Cleartext frame types (PROTOCOL.md §4).
const (
	frameClientHello uint8 = 0x01
	frameServerHello uint8 = 0x02
	frameAbort       uint8 = 0x7F
)

const (
	frameHeaderLen  = 4
	maxFrameBodyLen = 8192

	helloMagic     = "SECURECHAT"
	randomLen      = 32
	versionV1      = 0x0001
	sigAlgEd25519  = 0x0807
	maxListEntries = 16
	hostKeyLen     = 32
	signatureLen   = 64
	// signatureFieldLen is the opaque16 signature at the end of SERVER_HELLO,
	// cut off to form SH_unsigned (PROTOCOL.md §7.2).
	signatureFieldLen = 2 + signatureLen
)

var (
	errMalformed     = errors.New("handshake: malformed message")
	errFrameTooLarge = errors.New("handshake: frame longer than 8192 bytes")
)

// ErrUnexpectedFrame is a cleartext frame of a type that has no place at
// that step. As the server's first reply it is what a server of another
// protocol looks like (an HTTP or SSH server answers with text).
var ErrUnexpectedFrame = errors.New("handshake: unexpected frame")

// readFrame reads one cleartext frame. The header is checked on its own, so an
// oversized or unexpected frame is refused without reading its body. It reads
// exactly the frame's bytes: the record layer takes over the same stream.
func readFrame(r io.Reader, want ...uint8) (typ uint8, frame []byte, err error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, fmt.Errorf("handshake: reading frame header: %w", err)
	}
	typ = hdr[0]
	n := int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	expected := false
	for _, w := range want {
		expected = expected || typ == w
	}
	if !expected {
		return typ, nil, fmt.Errorf("%w type 0x%02x", ErrUnexpectedFrame, typ)
	}
	if n > maxFrameBodyLen {
		return typ, nil, errFrameTooLarge
	}
	frame = make([]byte, frameHeaderLen+n)
	copy(frame, hdr[:])
	if _, err := io.ReadFull(r, frame[frameHeaderLen:]); err != nil {
		return typ, nil, fmt.Errorf("handshake: reading frame body: %w", err)
	}
	return typ, frame, nil
}

// addFrame writes type and a u24 length around body.
func marshalFrame(typ uint8, body func(*cryptobyte.Builder)) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8(typ)
	b.AddUint24LengthPrefixed(body)
	frame, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("handshake: encoding frame: %w", err)
	}
	if len(frame)-frameHeaderLen > maxFrameBodyLen {
		return nil, errFrameTooLarge
	}
	return frame, nil
}

type keyShare struct {
	group Group
	data  []byte
}

// clientHello is the CLIENT_HELLO body (PROTOCOL.md §5.1). Parsing keeps
// every field as sent, so marshal(parse(x)) == x; the negotiation rules that
// are not about syntax (versions, duplicates, transport) live in the server.
type clientHello struct {
	versions   []uint16
	random     [randomLen]byte
	transport  string
	groups     []Group
	keyShares  []keyShare
	sigAlgs    []uint16
	extensions []byte
}

func (m *clientHello) marshal() ([]byte, error) {
	if err := checkCount(len(m.versions)); err != nil {
		return nil, err
	}
	if err := checkCount(len(m.groups)); err != nil {
		return nil, err
	}
	if err := checkCount(len(m.keyShares)); err != nil {
		return nil, err
	}
	if err := checkCount(len(m.sigAlgs)); err != nil {
		return nil, err
	}
	return marshalFrame(frameClientHello, func(b *cryptobyte.Builder) {
		b.AddBytes([]byte(helloMagic))
		b.AddUint8(uint8(len(m.versions)))
		for _, v := range m.versions {
			b.AddUint16(v)
		}
		b.AddBytes(m.random[:])
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.transport)) })
		b.AddUint8(uint8(len(m.groups)))
		for _, g := range m.groups {
			b.AddUint16(uint16(g))
		}
		b.AddUint8(uint8(len(m.keyShares)))
		for _, ks := range m.keyShares {
			b.AddUint16(uint16(ks.group))
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(ks.data) })
		}
		b.AddUint8(uint8(len(m.sigAlgs)))
		for _, a := range m.sigAlgs {
			b.AddUint16(a)
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.extensions) })
	})
}

func checkCount(n int) error {
	if n < 1 || n > maxListEntries {
		return fmt.Errorf("handshake: list of %d entries (want 1..16)", n)
	}
	return nil
}

// parseClientHello parses a complete CLIENT_HELLO frame, header included.
func parseClientHello(frame []byte) (*clientHello, error) {
	body, err := frameBody(frame, frameClientHello)
	if err != nil {
		return nil, err
	}
	s := cryptobyte.String(body)
	m := new(clientHello)
	var magic []byte
	var transport cryptobyte.String
	if !s.ReadBytes(&magic, len(helloMagic)) || string(magic) != helloMagic ||
		!readUint16List(&s, &m.versions) ||
		!s.CopyBytes(m.random[:]) ||
		!s.ReadUint8LengthPrefixed(&transport) {
		return nil, errMalformed
	}
	m.transport = string(transport)
	var groups []uint16
	if !readUint16List(&s, &groups) {
		return nil, errMalformed
	}
	for _, g := range groups {
		m.groups = append(m.groups, Group(g))
	}
	var n uint8
	if !s.ReadUint8(&n) || n < 1 || n > maxListEntries {
		return nil, errMalformed
	}
	for range n {
		var g uint16
		var data cryptobyte.String
		if !s.ReadUint16(&g) || !s.ReadUint16LengthPrefixed(&data) {
			return nil, errMalformed
		}
		m.keyShares = append(m.keyShares, keyShare{Group(g), []byte(data)})
	}
	var ext cryptobyte.String
	if !readUint16List(&s, &m.sigAlgs) || !s.ReadUint16LengthPrefixed(&ext) || !s.Empty() {
		return nil, errMalformed
	}
	m.extensions = []byte(ext)
	return m, nil
}

// readUint16List reads a u8 count (1..16) followed by that many u16.
func readUint16List(s *cryptobyte.String, out *[]uint16) bool {
	var n uint8
	if !s.ReadUint8(&n) || n < 1 || n > maxListEntries {
		return false
	}
	list := make([]uint16, n)
	for i := range list {
		if !s.ReadUint16(&list[i]) {
			return false
		}
	}
	*out = list
	return true
}

// frameBody checks a frame's type and that its u24 length covers exactly the
// rest of the buffer.
func frameBody(frame []byte, typ uint8) ([]byte, error) {
	if len(frame) < frameHeaderLen || frame[0] != typ {
		return nil, errMalformed
	}
	n := int(frame[1])<<16 | int(frame[2])<<8 | int(frame[3])
	if n > maxFrameBodyLen {
		return nil, errFrameTooLarge
	}
	if n != len(frame)-frameHeaderLen {
		return nil, errMalformed
	}
	return frame[frameHeaderLen:], nil
}

// serverHello is the SERVER_HELLO body (PROTOCOL.md §5.2).
type serverHello struct {
	version    uint16
	random     [randomLen]byte
	group      Group
	keyShare   []byte
	sigAlg     uint16
	hostKey    []byte
	extensions []byte
	signature  []byte
}

// marshal encodes the frame; a nil signature is encoded as 64 zero bytes so
// the caller can sign everything before the last 66 bytes and fill them in.
func (m *serverHello) marshal() ([]byte, error) {
	if len(m.hostKey) != hostKeyLen {
		return nil, fmt.Errorf("handshake: host key of %d bytes", len(m.hostKey))
	}
	sig := m.signature
	if sig == nil {
		sig = make([]byte, signatureLen)
	}
	if len(sig) != signatureLen {
		return nil, fmt.Errorf("handshake: signature of %d bytes", len(sig))
	}
	return marshalFrame(frameServerHello, func(b *cryptobyte.Builder) {
		b.AddUint16(m.version)
		b.AddBytes(m.random[:])
		b.AddUint16(uint16(m.group))
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.keyShare) })
		b.AddUint16(m.sigAlg)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.hostKey) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.extensions) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sig) })
	})
}

// parseServerHello parses a complete SERVER_HELLO frame. The host key and
// signature must have their exact sizes so SH_unsigned is well defined.
func parseServerHello(frame []byte) (*serverHello, error) {
	body, err := frameBody(frame, frameServerHello)
	if err != nil {
		return nil, err
	}
	s := cryptobyte.String(body)
	m := new(serverHello)
	var g uint16
	var share, hostKey, ext, sig cryptobyte.String
	if !s.ReadUint16(&m.version) ||
		!s.CopyBytes(m.random[:]) ||
		!s.ReadUint16(&g) ||
		!s.ReadUint16LengthPrefixed(&share) ||
		!s.ReadUint16(&m.sigAlg) ||
		!s.ReadUint16LengthPrefixed(&hostKey) || len(hostKey) != hostKeyLen ||
		!s.ReadUint16LengthPrefixed(&ext) ||
		!s.ReadUint16LengthPrefixed(&sig) || len(sig) != signatureLen ||
		!s.Empty() {
		return nil, errMalformed
	}
	m.group = Group(g)
	m.keyShare = []byte(share)
	m.hostKey = []byte(hostKey)
	m.extensions = []byte(ext)
	m.signature = []byte(sig)
	return m, nil
}

// ABORT codes (PROTOCOL.md §4).
const (
	AbortUnsupportedVersion uint8 = 0x01
	AbortNoCommonAlgorithm  uint8 = 0x02
	AbortHandshakeFailure   uint8 = 0x03
)

func marshalAbort(code uint8) []byte {
	return []byte{frameAbort, 0, 0, 1, code}
}

// parseAbort accepts only a one-byte body.
func parseAbort(frame []byte) (uint8, error) {
	body, err := frameBody(frame, frameAbort)
	if err != nil {
		return 0, err
	}
	if len(body) != 1 {
		return 0, errMalformed
	}
	return body[0], nil
}
