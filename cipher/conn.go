package cipher

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// RecordType is the type byte of a record (PROTOCOL.md §9.1).
type RecordType uint8

// Record types of PROTOCOL.md §9.1.
const (
	TypeFinished   RecordType = 0x10
	TypeAuth       RecordType = 0x11
	TypeAuthResult RecordType = 0x12
	TypeKeyUpdate  RecordType = 0x13
	TypeClose      RecordType = 0x14
	TypeApp        RecordType = 0x20
)

func (t RecordType) String() string {
	switch t {
	case TypeFinished:
		return "FINISHED"
	case TypeAuth:
		return "AUTH"
	case TypeAuthResult:
		return "AUTH_RESULT"
	case TypeKeyUpdate:
		return "KEY_UPDATE"
	case TypeClose:
		return "CLOSE"
	case TypeApp:
		return "APP"
	}
	return fmt.Sprintf("RecordType(%#02x)", uint8(t))
}

// MaxPlaintext is the largest payload of one record (PROTOCOL.md §9).
const MaxPlaintext = 16384

// finishedLen is the size of a FINISHED payload, an HMAC-SHA-256 (§10.1).
const finishedLen = 32

var (
	// ErrBadRecord is the one error for every record that fails any check of
	// PROTOCOL.md §9.2, and for every read and write after it (§9.3).
	ErrBadRecord = errors.New("cipher: bad record")

	// ErrTruncated reports that the stream ended without a CLOSE record
	// (PROTOCOL.md §12). It wraps io.ErrUnexpectedEOF. Other transport
	// failures before a CLOSE are reported as errors that match both
	// ErrTruncated and the transport's error under errors.Is.
	ErrTruncated = fmt.Errorf("cipher: stream ended without close record: %w", io.ErrUnexpectedEOF)

	errShutdown        = fmt.Errorf("cipher: close record already sent: %w", net.ErrClosed)
	errNotEstablished  = errors.New("cipher: record type not allowed before login")
	errTooLarge        = fmt.Errorf("cipher: payload larger than %d bytes", MaxPlaintext)
	errNotEmpty        = errors.New("cipher: key update and close records carry no payload")
	errUnknownType     = errors.New("cipher: unknown record type")
	errKeysExhausted   = errors.New("cipher: key usage limit reached before login")
	errAlreadyClosed   = fmt.Errorf("cipher: close called twice: %w", net.ErrClosed)
	defaultCloseWait   = time.Second
	defaultRekeyBytes  = int64(1 << 30)
	defaultRekeyPeriod = time.Hour
)

// maxKeptWriteBuffer bounds the write buffer a connection keeps between
// writes; a larger batch gets a buffer of its own that is then dropped.
const maxKeptWriteBuffer = 256 << 10

// writeBatch is how many full records Write seals per underlying write.
const writeBatch = 4

// truncatedError is a transport failure before a CLOSE record.
type truncatedError struct{ cause error }

func (e *truncatedError) Error() string   { return ErrTruncated.Error() + ": " + e.cause.Error() }
func (e *truncatedError) Unwrap() []error { return []error{ErrTruncated, e.cause} }

// Options tunes a Conn. The zero value and nil mean the defaults.
type Options struct {
	// RekeyAfterBytes is the soft limit (PROTOCOL.md §11): once this many
	// bytes of records have been sent under one key generation, the next
	// write sends KEY_UPDATE first. 0 means 1 GiB.
	RekeyAfterBytes int64
	// RekeyAfterTime is the soft limit in time since the sending generation
	// was installed, checked when a record is sent. 0 means 1 hour.
	RekeyAfterTime time.Duration

	// MaxRecordsPerKey lowers the hard limit of 2^31 records per direction
	// and generation, for tests. It binds both sides: the sender rekeys in
	// time and the receiver fails on a record beyond it. 0 means 2^31; values
	// are clamped to [3, 2^31].
	MaxRecordsPerKey uint64
	// MaxBlocksPerKey lowers the hard limit of 2^32 AES blocks of ciphertext
	// per direction and generation, for tests, like MaxRecordsPerKey. 0 means
	// 2^32; values are clamped to [1026, 2^32] so that one full record and a
	// KEY_UPDATE always fit.
	MaxBlocksPerKey uint64

	// CloseTimeout bounds how long Close waits to send CLOSE and for the
	// peer's CLOSE or end of stream. 0 means 1 second.
	CloseTimeout time.Duration

	// OnRekey, if set, is called each time a direction moves to its next
	// key generation: sent is true when this side sent KEY_UPDATE, false
	// when the peer did. It is for counting (metrics): it runs with that
	// direction's lock held, so it must be quick and must not use the Conn.
	OnRekey func(sent bool)
}

func (o *Options) resolve() (limits, time.Duration) {
	l := limits{
		maxRecords:  protocolMaxRecords,
		maxBlocks:   protocolMaxBlocks,
		rekeyBytes:  defaultRekeyBytes,
		rekeyPeriod: defaultRekeyPeriod,
	}
	wait := defaultCloseWait
	if o == nil {
		return l, wait
	}
	l.onRekey = o.OnRekey
	if o.RekeyAfterBytes > 0 {
		l.rekeyBytes = o.RekeyAfterBytes
	}
	if o.RekeyAfterTime > 0 {
		l.rekeyPeriod = o.RekeyAfterTime
	}
	if o.MaxRecordsPerKey > 0 {
		l.maxRecords = min(max(o.MaxRecordsPerKey, minMaxRecords), protocolMaxRecords)
	}
	if o.MaxBlocksPerKey > 0 {
		l.maxBlocks = min(max(o.MaxBlocksPerKey, minMaxBlocks), protocolMaxBlocks)
	}
	if o.CloseTimeout > 0 {
		wait = o.CloseTimeout
	}
	return l, wait
}

// Conn is a record-protected connection. It implements net.Conn; Read and
// Write carry APP records as a byte stream.
type Conn struct {
	conn      net.Conn
	lim       limits
	closeWait time.Duration

	established atomic.Bool
	failed      atomic.Bool // a bad record was seen or Abort was called
	closing     atomic.Bool

	// peerDone is closed once the receive direction has ended (CLOSE, end of
	// stream, bad record); Close waits on it when another goroutine reads.
	peerDone     chan struct{}
	peerDoneOnce sync.Once

	in       halfConn // guards the fields below up to out
	rbuf     []byte   // small[:] or a pooled large buffer; payloads returned point into it
	large    *[]byte  // the pooled buffer rbuf is, if any
	have     int      // bytes of the current record in rbuf; a read timeout keeps them
	consumed bool     // the record in rbuf was returned; it goes at the next read
	pending  []byte   // APP bytes not yet returned by Read
	small    [smallReadBuffer]byte

	out       halfConn // guards the fields below
	wbuf      []byte
	closeSent bool
}

var _ net.Conn = (*Conn)(nil)

// New layers the record protocol over c. sendSecret and recvSecret are the
// generation-0 traffic secrets of PROTOCOL.md §8 (c2s and s2c, swapped by
// role). New copies what it needs and does not keep the slices; the caller
// clears its copies. opts may be nil.
func New(c net.Conn, sendSecret, recvSecret []byte, opts *Options) *Conn {
	lim, wait := opts.resolve()
	rc := &Conn{
		conn:      c,
		lim:       lim,
		closeWait: wait,
		peerDone:  make(chan struct{}),
	}
	rc.rbuf = rc.small[:]
	rc.out.encrypt = true
	rc.out.install(sendSecret)
	rc.in.install(recvSecret)
	return rc
}

// SetEstablished records that login succeeded (PROTOCOL.md §10.3): from now on
// APP and KEY_UPDATE are legal and the handshake types are not. The reading
// goroutine must call it before it reads the first record after AUTH_RESULT
// success.
func (c *Conn) SetEstablished() { c.established.Store(true) }

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.conn }

// LocalAddr returns the local address of the underlying connection.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the remote address of the underlying connection.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets the read and write deadlines of the underlying connection.
// A write that times out leaves a record half written, so it fails the
// sending direction for good; a read that times out can be retried.
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline sets the read deadline of the underlying connection.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline of the underlying connection.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// abort ends the connection after a failure: nothing more is written and the
// transport is aborted (a QUIC transport closes with its error code).
func (c *Conn) abort() error {
	if !c.failed.CompareAndSwap(false, true) {
		return nil
	}
	c.markPeerDone()
	if a, ok := c.conn.(interface{ Abort() error }); ok {
		return a.Abort()
	}
	return c.conn.Close()
}

// Abort fails the connection as a bad record does (PROTOCOL.md §9.3): it sends
// nothing, aborts the transport, and makes every later read and write return
// ErrBadRecord. The handshake calls it when it rejects a record that the
// record layer accepted, such as a wrong type for the step or a malformed
// payload.
func (c *Conn) Abort() error { return c.abort() }

func (c *Conn) markPeerDone() { c.peerDoneOnce.Do(func() { close(c.peerDone) }) }

// ReadRecord returns the next record that the caller has to handle. Its
// payload is valid until the next call of any read method. KEY_UPDATE is
// handled inside. On CLOSE it answers with CLOSE if none was sent, half
// closes, and returns TypeClose with io.EOF; every later read returns io.EOF.
// Before SetEstablished, a CLOSE as the first record (in FINISHED's place)
// is a bad record instead and is not answered.
// Do not mix ReadRecord with Read on one connection.
func (c *Conn) ReadRecord() (RecordType, []byte, error) {
	c.in.Lock()
	defer c.in.Unlock()
	c.pending = nil
	return c.readRecordLocked()
}

// ReadMessage returns the payload of the next APP record as a fresh slice
// the caller owns.
func (c *Conn) ReadMessage() ([]byte, error) {
	c.in.Lock()
	defer c.in.Unlock()
	if len(c.pending) > 0 {
		p := bytes.Clone(c.pending)
		c.pending = nil
		return p, nil
	}
	t, p, err := c.readRecordLocked()
	if err != nil {
		return nil, err
	}
	if t != TypeApp {
		return nil, c.badRecordLocked()
	}
	return append([]byte{}, p...), nil
}

// Read reads APP payload bytes as one stream; record boundaries are not kept.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.in.Lock()
	defer c.in.Unlock()
	for len(c.pending) == 0 {
		t, p, err := c.readRecordLocked()
		if err != nil {
			return 0, err
		}
		if t != TypeApp {
			return 0, c.badRecordLocked()
		}
		c.pending = p
	}
	n := copy(b, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *Conn) badRecordLocked() error {
	c.in.err = ErrBadRecord
	c.pending = nil
	c.abort()
	return ErrBadRecord
}

// readRecordLocked implements PROTOCOL.md §9.2. c.in is held.
func (c *Conn) readRecordLocked() (RecordType, []byte, error) {
	for {
		c.consume()
		if c.in.err != nil {
			return 0, nil, c.in.err
		}
		if c.failed.Load() {
			c.in.err = ErrBadRecord
			return 0, nil, ErrBadRecord
		}
		if err := c.fill(headerLen); err != nil {
			return 0, nil, err
		}
		// Bounds on the header alone, before reading or trusting the body.
		length, ok := checkHeader(c.rbuf[:headerLen])
		if !ok {
			return 0, nil, c.badRecordLocked()
		}
		n := headerLen + length + tagLen
		if err := c.fill(n); err != nil {
			return 0, nil, err
		}
		c.consumed = true
		first := c.in.gen == 0 && c.in.seq == 0
		t, payload, ok := c.in.open(c.rbuf[:n], &c.lim)
		if !ok {
			return 0, nil, c.badRecordLocked()
		}
		established := c.established.Load()
		switch t {
		case TypeKeyUpdate:
			if !established || len(payload) != 0 {
				return 0, nil, c.badRecordLocked()
			}
			c.in.rotate()
			c.lim.rekeyed(false)
			continue
		case TypeClose:
			// Before login the first record each way is FINISHED (§10.3):
			// a CLOSE in its place is fatal and gets no CLOSE back.
			if len(payload) != 0 || (first && !established) {
				return 0, nil, c.badRecordLocked()
			}
			c.in.err = io.EOF
			c.markPeerDone()
			c.sendClose()
			return TypeClose, nil, io.EOF
		case TypeApp:
			if !established {
				return 0, nil, c.badRecordLocked()
			}
		case TypeFinished, TypeAuth, TypeAuthResult:
			if established || !handshakeFormOK(t, payload) {
				return 0, nil, c.badRecordLocked()
			}
		default:
			return 0, nil, c.badRecordLocked()
		}
		return t, payload, nil
	}
}

// Read buffering. A connection reads headers and small records into a
// buffer of its own and borrows a large one from a pool only while a record
// that does not fit is read and used, giving it back at the next read; so
// an idle connection, blocked on the next header, holds no large buffer.
// Reads still ask for exactly the bytes of the current record (the header
// alone first, RL-9), never more.
const smallReadBuffer = 512

var largeReadBuffers = sync.Pool{New: func() any {
	b := make([]byte, maxRecordLen)
	return &b
}}

// consume drops the record returned last (its payload is no longer valid)
// and gives back a large buffer.
func (c *Conn) consume() {
	if !c.consumed {
		return
	}
	c.consumed, c.have = false, 0
	if c.large != nil {
		largeReadBuffers.Put(c.large)
		c.large = nil
		c.rbuf = c.small[:]
	}
}

// fill reads until rbuf holds n bytes of the current record.
func (c *Conn) fill(n int) error {
	if c.have >= n {
		return nil
	}
	if n > len(c.rbuf) {
		c.large = largeReadBuffers.Get().(*[]byte)
		copy(*c.large, c.rbuf[:c.have])
		c.rbuf = *c.large
	}
	m, err := io.ReadFull(c.conn, c.rbuf[c.have:n])
	c.have += m
	if err == nil {
		return nil
	}
	switch {
	case c.failed.Load():
		c.in.err = ErrBadRecord
	case isTimeout(err):
		// Not sticky: the bytes read so far stay in rbuf for the retry.
		return err
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		c.in.err = ErrTruncated
	case errors.Is(err, net.ErrClosed):
		c.in.err = err
	default:
		c.in.err = &truncatedError{cause: err}
	}
	c.markPeerDone()
	return c.in.err
}

// handshakeFormOK checks the wire form of the handshake records (PROTOCOL.md
// §9.2 step 6, §10): FINISHED is 32 bytes, AUTH_RESULT one byte 0x00 or
// 0x01, and the lengths inside AUTH add up exactly. What the fields mean
// (method, user name, password, MAC value) is the handshake's to judge.
func handshakeFormOK(t RecordType, p []byte) bool {
	switch t {
	case TypeFinished:
		return len(p) == finishedLen
	case TypeAuthResult:
		return len(p) == 1 && p[0] <= 1
	case TypeAuth:
		// method u8 | username opaque8 | password opaque16
		if len(p) < 2 {
			return false
		}
		rest := p[2:]
		if len(rest) < int(p[1])+2 {
			return false
		}
		rest = rest[p[1]:]
		return len(rest) == 2+int(binary.BigEndian.Uint16(rest))
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// writableLocked reports why the sending direction cannot be used. c.out is held.
func (c *Conn) writableLocked() error {
	if c.failed.Load() {
		return ErrBadRecord
	}
	return c.out.err
}

// makeRoomLocked enforces the key usage limits of PROTOCOL.md §11 before a
// record of n plaintext bytes is sealed: a data record must leave room for
// the KEY_UPDATE that ends its generation, so the sender sends that
// KEY_UPDATE first when a hard or soft limit says so.
func (c *Conn) makeRoomLocked(t RecordType, n int) error {
	hc := &c.out
	blocks := uint64(n/16 + 1)
	if t == TypeKeyUpdate || t == TypeClose {
		if hc.seq+1 > c.lim.maxRecords || hc.blocks+blocks > c.lim.maxBlocks {
			c.out.err = errKeysExhausted
			return errKeysExhausted
		}
		return nil
	}
	// PROTOCOL.md §11: KEY_UPDATE goes out while seq < maxRecords-1, and
	// while the blocks so far plus its one block stay within maxBlocks.
	hard := hc.seq+1 >= c.lim.maxRecords-1 || hc.blocks+blocks+1 > c.lim.maxBlocks
	established := c.established.Load()
	soft := established && (hc.bytes >= c.lim.rekeyBytes || time.Since(hc.genStart) >= c.lim.rekeyPeriod)
	if !hard && !soft {
		return nil
	}
	if !established {
		c.out.err = errKeysExhausted
		return errKeysExhausted
	}
	c.wbuf = hc.seal(c.wbuf, TypeKeyUpdate, nil)
	hc.rotate()
	c.lim.rekeyed(true)
	return nil
}

func (c *Conn) sealLocked(t RecordType, p []byte) error {
	if err := c.makeRoomLocked(t, len(p)); err != nil {
		return err
	}
	c.wbuf = c.out.seal(c.wbuf, t, p)
	return nil
}

// flushLocked writes everything sealed so far in one underlying Write.
func (c *Conn) flushLocked() error {
	_, err := c.conn.Write(c.wbuf)
	if cap(c.wbuf) > maxKeptWriteBuffer {
		c.wbuf = nil
	} else {
		c.wbuf = c.wbuf[:0]
	}
	if err != nil {
		if c.failed.Load() {
			err = ErrBadRecord
		}
		c.out.err = err
		return err
	}
	return nil
}

// WriteRecord seals and writes one record. TypeKeyUpdate is KeyUpdate and
// TypeClose sends CLOSE and half closes; both need an empty payload. APP needs
// SetEstablished first.
func (c *Conn) WriteRecord(t RecordType, payload []byte) error {
	switch t {
	case TypeKeyUpdate, TypeClose:
		if len(payload) != 0 {
			return errNotEmpty
		}
		if t == TypeClose {
			return c.sendClose()
		}
		return c.KeyUpdate()
	case TypeApp:
		if !c.established.Load() {
			return errNotEstablished
		}
	case TypeFinished, TypeAuth, TypeAuthResult:
	default:
		return errUnknownType
	}
	if len(payload) > MaxPlaintext {
		return errTooLarge
	}
	c.out.Lock()
	defer c.out.Unlock()
	if err := c.writableLocked(); err != nil {
		return err
	}
	c.wbuf = c.wbuf[:0]
	if err := c.sealLocked(t, payload); err != nil {
		return err
	}
	return c.flushLocked()
}

// WriteMessage writes p as one APP record.
func (c *Conn) WriteMessage(p []byte) error { return c.WriteRecord(TypeApp, p) }

// WriteMessages seals each p as one APP record into a single buffer and hands
// it to the transport in one Write, so a fan-out to many messages costs one
// system call. Nothing is sent if any p is longer than MaxPlaintext.
func (c *Conn) WriteMessages(ps [][]byte) error {
	if !c.established.Load() {
		return errNotEstablished
	}
	total := 0
	for _, p := range ps {
		if len(p) > MaxPlaintext {
			return errTooLarge
		}
		total += sealedLen(len(p))
	}
	c.out.Lock()
	defer c.out.Unlock()
	if err := c.writableLocked(); err != nil {
		return err
	}
	c.wbuf = slices.Grow(c.wbuf[:0], total+sealedLen(0))
	for _, p := range ps {
		if err := c.sealLocked(TypeApp, p); err != nil {
			return err
		}
	}
	if len(c.wbuf) == 0 {
		return nil
	}
	return c.flushLocked()
}

// Write writes b as APP records of up to MaxPlaintext bytes each.
func (c *Conn) Write(b []byte) (int, error) {
	if !c.established.Load() {
		return 0, errNotEstablished
	}
	c.out.Lock()
	defer c.out.Unlock()
	if err := c.writableLocked(); err != nil {
		return 0, err
	}
	n := 0
	for len(b) > 0 {
		c.wbuf = c.wbuf[:0]
		batched := 0
		for i := 0; i < writeBatch && len(b) > 0; i++ {
			chunk := b[:min(len(b), MaxPlaintext)]
			if err := c.sealLocked(TypeApp, chunk); err != nil {
				return n, err
			}
			b = b[len(chunk):]
			batched += len(chunk)
		}
		if err := c.flushLocked(); err != nil {
			return n, err
		}
		n += batched
	}
	return n, nil
}

// KeyUpdate sends KEY_UPDATE and switches the sending direction to the next
// key generation (PROTOCOL.md §11). It needs SetEstablished first.
func (c *Conn) KeyUpdate() error {
	if !c.established.Load() {
		return errNotEstablished
	}
	c.out.Lock()
	defer c.out.Unlock()
	if err := c.writableLocked(); err != nil {
		return err
	}
	c.wbuf = c.wbuf[:0]
	if err := c.makeRoomLocked(TypeKeyUpdate, 0); err != nil {
		return err
	}
	c.wbuf = c.out.seal(c.wbuf, TypeKeyUpdate, nil)
	c.out.rotate()
	c.lim.rekeyed(true)
	return c.flushLocked()
}

// sendClose sends CLOSE once and then half closes the transport when it can
// (PROTOCOL.md §12). Nothing can be written after it.
func (c *Conn) sendClose() error {
	c.out.Lock()
	defer c.out.Unlock()
	if c.closeSent {
		return nil
	}
	c.closeSent = true
	if err := c.writableLocked(); err != nil {
		return err
	}
	c.wbuf = c.wbuf[:0]
	if err := c.sealLocked(TypeClose, nil); err != nil {
		return err
	}
	if err := c.flushLocked(); err != nil {
		return err
	}
	c.out.err = errShutdown
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close ends the session gracefully (PROTOCOL.md §12): it sends CLOSE, half
// closes the transport if it can, waits up to Options.CloseTimeout for the
// peer's CLOSE or end of stream, and closes the transport. While it waits it
// may read (and drop) records itself, so a payload that ReadRecord returned
// is no longer valid once Close is called. After a bad
// record the transport is already aborted and Close only returns nil.
func (c *Conn) Close() error {
	if !c.closing.CompareAndSwap(false, true) {
		return errAlreadyClosed
	}
	if c.failed.Load() {
		return nil
	}
	deadline := time.Now().Add(c.closeWait)
	// The deadline also frees a writer stuck on a peer that stopped reading,
	// so that the CLOSE below can take the lock.
	c.conn.SetWriteDeadline(deadline)
	c.sendClose()
	c.waitPeerClose(deadline)
	err := c.conn.Close()
	if c.failed.Load() {
		return nil
	}
	return err
}

// waitPeerClose waits until the peer's CLOSE or end of stream arrives, or
// until deadline. If no goroutine is reading, it reads (and drops) records
// itself; otherwise the reader signals peerDone.
func (c *Conn) waitPeerClose(deadline time.Time) {
	select {
	case <-c.peerDone:
		return
	default:
	}
	if c.in.TryLock() {
		defer c.in.Unlock()
		c.pending = nil
		c.conn.SetReadDeadline(deadline)
		for {
			if _, _, err := c.readRecordLocked(); err != nil {
				return
			}
		}
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-c.peerDone:
	case <-t.C:
	}
}
