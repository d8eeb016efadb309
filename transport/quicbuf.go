package transport

import (
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
)

// wantUDPBuffer is the socket buffer size quic-go asks for on each UDP socket
// (its desiredBufferSize, 7 MiB). Linux caps the request at
// net.core.rmem_max / wmem_max (and reports twice the granted value), so a
// stock kernel grants far less unless the process may use SO_RCVBUFFORCE.
const wantUDPBuffer = 7 << 20

// quicBufferEnv is the variable quic-go reads before printing its own buffer
// warning with the standard log package, outside any logger we are given.
const quicBufferEnv = "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING"

var (
	quicEnvOnce      sync.Once
	bufferWarnMuted  bool // the user set quicBufferEnv to true: stay quiet too
	udpBufferWarning bufferWarning
)

// routeQUICBufferWarning silences quic-go's log.Printf about small UDP buffers
// so that checkUDPBuffers can say it once through Options.Logger instead. It
// sets quicBufferEnv in the process environment unless the user already set
// it, in which case the user's choice stands for both messages. Where the
// buffers cannot be inspected quic-go keeps its own message.
func routeQUICBufferWarning() {
	if !inspectsUDPBuffers {
		return
	}
	quicEnvOnce.Do(func() {
		if v, ok := os.LookupEnv(quicBufferEnv); ok {
			bufferWarnMuted, _ = strconv.ParseBool(v)
			return
		}
		os.Setenv(quicBufferEnv, "true")
	})
}

// checkUDPBuffers logs, once per process, that pc's buffers are smaller than
// quic-go wants. It runs after quic-go has tried to enlarge them.
func checkUDPBuffers(pc net.PacketConn, log *slog.Logger) {
	if bufferWarnMuted {
		return
	}
	rcv, snd, ok := udpBufferSizes(pc)
	if !ok {
		return
	}
	udpBufferWarning.check(log, rcv, snd)
}

type bufferWarning struct{ once sync.Once }

func (w *bufferWarning) check(log *slog.Logger, rcv, snd int) {
	if rcv >= wantUDPBuffer && snd >= wantUDPBuffer {
		return
	}
	w.once.Do(func() {
		log.Warn("transport: QUIC UDP socket buffers are smaller than quic-go wants, throughput may suffer; "+
			"raise the limits with: sysctl -w net.core.rmem_max=7500000 net.core.wmem_max=7500000",
			"receive_kib", rcv/1024, "send_kib", snd/1024, "want_kib", wantUDPBuffer/1024)
	})
}
