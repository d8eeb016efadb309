package bench

import (
	"context"
	"crypto/aes"
	stdcipher "crypto/cipher"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"time"

	"securechat/cipher"
	"securechat/handshake"
	"securechat/transport"
)

// ThroughputConfig configures RunThroughput.
type ThroughputConfig struct {
	Transports    []transport.Transport // nil means TCP and QUIC
	Size          int64                 // bytes per transport and kind, all rounds together; 0 means 256 MiB
	Rounds        int                   // raw and secure transfers take turns this many times; 0 means 4
	Timeout       time.Duration         // per transfer; 0 means 60 s
	PrimitiveTime time.Duration         // per single-core loop; 0 means 1 s
	Progress      func(line string)
}

// MaxTransfer bounds one transfer.
const MaxTransfer = 16 << 30

// ThroughputRow is one measured rate. MB are 10^6 bytes.
type ThroughputRow struct {
	Name     string  `json:"name"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	MBps     float64 `json:"mb_per_s"`
	Baseline string  `json:"baseline,omitempty"` // name of the row it is judged against
	Ratio    float64 `json:"ratio,omitempty"`    // MBps / the baseline's MBps
	// AllocsPerRecord is measured for the single-core loops only.
	AllocsPerRecord *float64 `json:"allocs_per_record,omitempty"`
}

// ThroughputReport is the outcome of RunThroughput.
type ThroughputReport struct {
	Rows []ThroughputRow `json:"rows"`
}

// Row names, also used as baselines.
const (
	RowPrimitive   = "aes-256-cbc + hmac-sha256, 16 KiB records, 1 core"
	RowRecordLayer = "record layer seal + write, 16 KiB records, 1 core"
)

// RowRaw and RowSecure name the transfers over transport tr.
func RowRaw(tr string) string    { return tr + " raw loopback, one stream" }
func RowSecure(tr string) string { return tr + " securechat channel" }

// RunThroughput measures one session's bulk transfer through the secure
// channel over each transport on loopback, beside the raw transport and
// the single-core limit of the record layer's primitives, all in one run.
func RunThroughput(ctx context.Context, cfg ThroughputConfig) (*ThroughputReport, error) {
	if cfg.Transports == nil {
		cfg.Transports = []transport.Transport{transport.TCP, transport.QUIC}
	}
	if cfg.Size == 0 {
		cfg.Size = 256 << 20
	}
	if cfg.Size < 1 || cfg.Size > MaxTransfer {
		return nil, fmt.Errorf("bench: transfer size %d; want 1 to %d bytes", cfg.Size, int64(MaxTransfer))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 4
	}
	if cfg.Rounds > 100 {
		return nil, fmt.Errorf("bench: %d rounds; want at most 100", cfg.Rounds)
	}
	if cfg.PrimitiveTime <= 0 {
		cfg.PrimitiveTime = time.Second
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	rep := &ThroughputReport{}
	add := func(r ThroughputRow) {
		if r.Seconds > 0 {
			r.MBps = float64(r.Bytes) / r.Seconds / 1e6
		}
		for _, b := range rep.Rows {
			if b.Name == r.Baseline && b.MBps > 0 {
				r.Ratio = r.MBps / b.MBps
			}
		}
		rep.Rows = append(rep.Rows, r)
	}

	progress("throughput: primitives")
	n, d, allocs := countAllocs(cfg.PrimitiveTime, primitiveLoop)
	add(ThroughputRow{Name: RowPrimitive, Bytes: n, Seconds: d.Seconds(), AllocsPerRecord: &allocs})
	progress("throughput: record layer")
	n, d, allocs = countAllocs(cfg.PrimitiveTime, recordLayerLoop)
	add(ThroughputRow{Name: RowRecordLayer, Bytes: n, Seconds: d.Seconds(), Baseline: RowPrimitive, AllocsPerRecord: &allocs})

	for _, tr := range cfg.Transports {
		// Raw and secure transfers take turns, Size/Rounds bytes each, so
		// that load from elsewhere falls on both alike.
		part := max(1, cfg.Size/int64(cfg.Rounds))
		var raw, sec ThroughputRow
		for round := 1; round <= cfg.Rounds; round++ {
			progress(fmt.Sprintf("throughput: %s raw, round %d/%d", tr.Name(), round, cfg.Rounds))
			n, d, err := rawTransfer(ctx, tr, part, cfg.Timeout)
			if err != nil {
				return rep, fmt.Errorf("bench: %s raw transfer: %w", tr.Name(), err)
			}
			raw.Bytes, raw.Seconds = raw.Bytes+n, raw.Seconds+d.Seconds()
			progress(fmt.Sprintf("throughput: %s securechat, round %d/%d", tr.Name(), round, cfg.Rounds))
			n, d, err = secureTransfer(ctx, tr, part, cfg.Timeout)
			if err != nil {
				return rep, fmt.Errorf("bench: %s secure transfer: %w", tr.Name(), err)
			}
			sec.Bytes, sec.Seconds = sec.Bytes+n, sec.Seconds+d.Seconds()
		}
		raw.Name = RowRaw(tr.Name())
		add(raw)
		base := RowRaw(tr.Name())
		if tr.Name() == "tcp" {
			// The TCP target is set against the primitives: one session
			// cannot seal faster than one core runs them. The raw row
			// beside it shows what the kernel allows.
			base = RowPrimitive
		}
		sec.Name, sec.Baseline = RowSecure(tr.Name()), base
		add(sec)
	}
	progress("")
	return rep, nil
}

// countAllocs sets up a single-core loop, runs it and reports the heap
// allocations per 16 KiB record the loop made (the process is otherwise
// idle; the setup is not counted).
func countAllocs(d time.Duration, setup func() func(time.Duration) (int64, time.Duration)) (int64, time.Duration, float64) {
	loop := setup()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, el := loop(d)
	runtime.ReadMemStats(&after)
	records := float64(n / cipher.MaxPlaintext)
	return n, el, float64(after.Mallocs-before.Mallocs) / records
}

// primitiveLoop runs AES-256-CBC encryption and HMAC-SHA-256 over 16 KiB
// records with state reused across records, as the record layer keeps it,
// on one goroutine for about d. It is the fastest any sealing can be.
func primitiveLoop() func(time.Duration) (int64, time.Duration) {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	iv := make([]byte, aes.BlockSize)
	enc := stdcipher.NewCBCEncrypter(block, iv)
	ivs, ok := enc.(interface{ SetIV([]byte) })
	if !ok {
		panic("bench: crypto/cipher CBC cannot reset its IV")
	}
	mac := hmac.New(sha256.New, key)
	buf := make([]byte, cipher.MaxPlaintext+aes.BlockSize) // payload and one block of padding
	var tag [sha256.Size]byte
	return func(d time.Duration) (int64, time.Duration) {
		var n int64
		start := time.Now()
		for {
			for range 64 {
				ivs.SetIV(iv)
				enc.CryptBlocks(buf, buf)
				mac.Reset()
				mac.Write(buf)
				mac.Sum(tag[:0])
				n += cipher.MaxPlaintext
			}
			if el := time.Since(start); el >= d {
				return n, el
			}
		}
	}
}

// discardConn swallows writes; the record layer's other calls on it do
// not happen in recordLayerLoop.
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error) { return len(b), nil }

// recordLayerLoop writes full APP records through cipher.Conn into a conn
// that discards them: fresh IV, padding, encryption, MAC and framing.
func recordLayerLoop() func(time.Duration) (int64, time.Duration) {
	s1, s2 := make([]byte, 32), make([]byte, 32)
	rand.Read(s1)
	rand.Read(s2)
	c := cipher.New(discardConn{}, s1, s2, nil)
	c.SetEstablished()
	payload := make([]byte, cipher.MaxPlaintext)
	// The first record sizes the connection's write buffer.
	if err := c.WriteMessage(payload); err != nil {
		panic("bench: record layer write to a discarding conn failed: " + err.Error())
	}
	return func(d time.Duration) (int64, time.Duration) {
		var n int64
		start := time.Now()
		for {
			for range 64 {
				if err := c.WriteMessage(payload); err != nil {
					panic("bench: record layer write to a discarding conn failed: " + err.Error())
				}
				n += cipher.MaxPlaintext
			}
			if el := time.Since(start); el >= d {
				return n, el
			}
		}
	}
}

// pump writes size bytes to w in 256 KiB writes and then calls finish,
// while a reader drains r to the end; once it has, closeReader ends the
// reading side (a graceful close may wait for it). It returns what the
// reader read and the time from the first write until the reader saw the
// end.
func pump(w io.Writer, finish func() error, r io.Reader, closeReader func() error, size int64) (int64, time.Duration, error) {
	type result struct {
		n   int64
		at  time.Time
		err error
	}
	res := make(chan result, 1)
	go func() {
		buf := make([]byte, 256<<10)
		var n int64
		for {
			m, err := r.Read(buf)
			n += int64(m)
			if err == io.EOF {
				res <- result{n: n, at: time.Now()}
				return
			}
			if err != nil {
				res <- result{n: n, at: time.Now(), err: err}
				return
			}
		}
	}()
	buf := make([]byte, 256<<10)
	start := time.Now()
	var werr error
	for left := size; left > 0 && werr == nil; {
		chunk := buf[:min(int64(len(buf)), left)]
		_, werr = w.Write(chunk)
		left -= int64(len(chunk))
	}
	finished := make(chan error, 1)
	if werr == nil {
		go func() { finished <- finish() }()
	} else {
		finished <- werr
	}
	r2 := <-res
	closeReader()
	if err := <-finished; err != nil {
		return r2.n, r2.at.Sub(start), err
	}
	if r2.err == nil && r2.n != size {
		r2.err = fmt.Errorf("received %d bytes, sent %d", r2.n, size)
	}
	return r2.n, r2.at.Sub(start), r2.err
}

func rawTransfer(ctx context.Context, tr transport.Transport, size int64, timeout time.Duration) (int64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The first byte goes before the pair exists: QUIC shows a stream to
	// the acceptor only once data is on it.
	ln, err := tr.Listen(ctx, "127.0.0.1:0", nil)
	if err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		acc <- c
	}()
	d, err := tr.Dial(ctx, ln.Addr().String(), nil)
	if err != nil {
		return 0, 0, err
	}
	if _, err := d.Write([]byte{0}); err != nil {
		d.Close()
		return 0, 0, err
	}
	var a net.Conn
	select {
	case a = <-acc:
	case <-ctx.Done():
	}
	if a == nil {
		d.Close()
		return 0, 0, errors.New("accept failed")
	}
	defer closeBoth(d, a)
	if _, err := io.ReadFull(a, make([]byte, 1)); err != nil {
		return 0, 0, err
	}
	dl, _ := ctx.Deadline()
	d.SetDeadline(dl)
	a.SetDeadline(dl)
	cw, ok := d.(transport.CloseWriter)
	if !ok {
		return 0, 0, errors.New("transport conn cannot half close")
	}
	return pump(d, cw.CloseWrite, a, func() error { return nil }, size)
}

// closeBoth closes two ends at once: a graceful QUIC close waits for the
// peer's, so one after the other would wait out the close timeout.
func closeBoth(a, b io.Closer) {
	done := make(chan struct{})
	go func() {
		a.Close()
		close(done)
	}()
	b.Close()
	<-done
}

// acceptAll lets every login in without hashing: the channel is measured,
// not the password store.
type acceptAll struct{}

func (acceptAll) Verify(context.Context, string, []byte) error { return nil }

func secureTransfer(ctx context.Context, tr transport.Transport, size int64, timeout time.Duration) (int64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ln, err := tr.Listen(ctx, "127.0.0.1:0", nil)
	if err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	type accepted struct {
		s   *handshake.Session
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- accepted{err: err}
			return
		}
		s, err := handshake.Server(ctx, c, &handshake.ServerConfig{HostKey: priv, Transport: tr.Name(), Verifier: acceptAll{}})
		acc <- accepted{s, err}
	}()
	c, err := tr.Dial(ctx, ln.Addr().String(), nil)
	if err != nil {
		return 0, 0, err
	}
	cs, err := handshake.Client(ctx, c, &handshake.ClientConfig{
		Transport: tr.Name(), HostKeyCallback: handshake.FixedHostKey(pub), User: "bench",
		Password: func(int) ([]byte, error) { return []byte("bench-password"), nil },
	})
	if err != nil {
		return 0, 0, err
	}
	var a accepted
	select {
	case a = <-acc:
	case <-ctx.Done():
		a.err = ctx.Err()
	}
	if a.err != nil {
		cs.Close()
		return 0, 0, a.err
	}
	defer closeBoth(cs, a.s)
	dl, _ := ctx.Deadline()
	cs.SetDeadline(dl)
	a.s.SetDeadline(dl)
	return pump(cs, cs.Close, a.s, a.s.Close, size)
}
