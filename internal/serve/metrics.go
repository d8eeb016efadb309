package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"securechat/chat"
	"securechat/chatcluster"
	"securechat/internal/cmderr"
	"securechat/metrics"
	"securechat/server"
)

// serveMetrics is the metrics side of serve: the collectors, their HTTP
// listener and the state /readyz reports. A nil *serveMetrics (no
// --metrics-listen) does nothing.
type serveMetrics struct {
	m    *metrics.Metrics
	ln   net.Listener
	stop context.CancelFunc // ends the HTTP server; set by start

	listening atomic.Bool // the chat listener is up and not shutting down
	// reloadFailed is what the last SIGHUP reload kept old (see reloaded).
	reloadFailed atomic.Pointer[[]string]
	sources      atomic.Pointer[metrics.Sources] // set by start
	node         *chatcluster.Node               // nil for a server alone
}

// newServeMetrics binds the --metrics-listen address (flag), so that a busy
// port fails serve before it listens for chat. It returns nil when the flag
// is not given. node is the server's place in its cluster, nil for a
// server alone.
func newServeMetrics(flag, transportName string, node *chatcluster.Node) (*serveMetrics, error) {
	if flag == "" {
		return nil, nil
	}
	addr, err := metrics.ListenAddr(flag)
	if err != nil {
		return nil, cmderr.Usagef("--metrics-listen: %v", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, cmderr.WithHint(fmt.Errorf("metrics: %w", err), "is another server already listening there?")
	}
	sm := &serveMetrics{ln: ln, node: node}
	// The scrape-time sources are the server and hub, made after this;
	// until start they read as absent.
	src := metrics.Sources{
		Transport: transportName,
		Sessions: func() int {
			if src := sm.sources.Load(); src != nil {
				return src.Sessions()
			}
			return 0
		},
		Stats: func() chat.Stats {
			if src := sm.sources.Load(); src != nil {
				return src.Stats()
			}
			return chat.Stats{}
		},
	}
	if node != nil {
		src.Cluster = func() metrics.ClusterStats { return metrics.ClusterStats(node.Stats()) }
	}
	sm.m = metrics.New(src)
	return sm, nil
}

// hooks returns the server hooks that count into the metrics.
func (sm *serveMetrics) hooks() server.Hooks {
	if sm == nil {
		return server.Hooks{}
	}
	return sm.m.Hooks()
}

// start registers the readiness checks, starts answering HTTP and prints
// the address, as serve prints its own. Call it once the chat listener is
// up. It serves until close, not until ctx is done, so that /readyz says
// "not ready" while the server drains its sessions.
func (sm *serveMetrics) start(ctx context.Context, w io.Writer, log *slog.Logger,
	srv *server.Server, hub *chat.Hub, stateDir string, storeHealth func() error) {
	if sm == nil {
		return
	}
	sm.sources.Store(&metrics.Sources{Sessions: srv.Sessions, Stats: hub.Stats})
	sm.listening.Store(true)
	sm.m.AddCheck("listener", func() error {
		if !sm.listening.Load() {
			return errors.New("not accepting connections")
		}
		return nil
	})
	sm.m.AddCheck("creds", func() error {
		// The error itself goes to the log only: it may quote a line of
		// the creds file, and /readyz is read by whoever can reach it.
		if slices.Contains(sm.keptOld(), "accounts") {
			return errors.New("the last reload failed; the previous accounts are in use (see the server log)")
		}
		return nil
	})
	sm.m.AddCheck("keys", func() error {
		keys := slices.DeleteFunc(sm.keptOld(), func(f string) bool { return f == "accounts" })
		if len(keys) > 0 {
			return fmt.Errorf("the last reload of the %s failed; the previous ones are in use (see the server log)", strings.Join(keys, " and "))
		}
		return nil
	})
	sm.m.AddCheck("state_dir", func() error { return checkWritable(stateDir) })
	if sm.node != nil {
		// Messages sent meanwhile wait, and are refused as not stored if
		// the link stays down: a load balancer should send new clients
		// to another node.
		sm.m.AddCheck("cluster", func() error {
			if !sm.node.Stats().Connected {
				return errors.New("not connected to NATS; messages wait and may not be stored")
			}
			return nil
		})
	}
	if storeHealth != nil {
		// Fails while the chat database cannot commit (a full disk, a file
		// that became unwritable); messages are still delivered meanwhile.
		sm.m.AddCheck("store", storeHealth)
	}

	ctx, sm.stop = context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		if err := sm.m.Serve(ctx, sm.ln); err != nil {
			log.Error("metrics: serving stopped", "err", err)
		}
	}()
	fmt.Fprintf(w, "securechat: metrics on http://%s/metrics\n", sm.ln.Addr())
	log.Info("serving metrics", "addr", sm.ln.Addr().String())
}

// stopping marks the server unready: it no longer accepts connections.
func (sm *serveMetrics) stopping() {
	if sm != nil {
		sm.listening.Store(false)
	}
}

// reloaded records for /readyz what the last SIGHUP reload could not put
// in force: "accounts" (the creds check), "host keys" and "authorized
// keys" (the keys check); nothing after a good reload.
func (sm *serveMetrics) reloaded(failed []string) {
	if sm != nil {
		sm.reloadFailed.Store(&failed)
	}
}

// keptOld is a copy of what the last reload kept old.
func (sm *serveMetrics) keptOld() []string {
	if failed := sm.reloadFailed.Load(); failed != nil {
		return slices.Clone(*failed)
	}
	return nil
}

// close stops answering HTTP.
func (sm *serveMetrics) close() {
	switch {
	case sm == nil:
	case sm.stop != nil:
		sm.stop()
	default:
		sm.ln.Close()
	}
}

// checkWritable creates and removes a file in dir.
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".readyz-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
