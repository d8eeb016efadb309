package main

import (
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"securechat/internal/serve"
)

// serveConfigFor runs the serve command's flag parsing on args and returns
// the settings it would serve with.
func serveConfigFor(t *testing.T, args ...string) serve.Config {
	t.Helper()
	cmd := serveCommand()
	var got serve.Config
	cmd.Action = func(c *cli.Context) error {
		var err error
		got, err = serveConfig(c)
		return err
	}
	app := &cli.App{Name: "securechat", Commands: []*cli.Command{cmd}}
	if err := app.Run(append([]string{"securechat", "serve", "--state-dir", t.TempDir()}, args...)); err != nil {
		t.Fatalf("serve %v: %v", args, err)
	}
	return got
}

func TestServeHubFlags(t *testing.T) {
	// --ping-interval sets the keepalive only; the hello deadline is its own.
	c := serveConfigFor(t, "--ping-interval", "5s").Hub
	if c.PingInterval != 5*time.Second || c.HelloTimeout != 30*time.Second {
		t.Errorf("--ping-interval 5s: ping %v, hello %v; want 5s, 30s", c.PingInterval, c.HelloTimeout)
	}
	c = serveConfigFor(t, "--hello-timeout", "7s").Hub
	if c.HelloTimeout != 7*time.Second || c.PingInterval != 30*time.Second {
		t.Errorf("--hello-timeout 7s: hello %v, ping %v", c.HelloTimeout, c.PingInterval)
	}

	c = serveConfigFor(t).Hub
	if c.MaxSessions != 10 || c.HistoryRoomBytes != 1<<20 || c.HistoryBytes != 64<<20 {
		t.Errorf("defaults: sessions %d, room history %d, history %d", c.MaxSessions, c.HistoryRoomBytes, c.HistoryBytes)
	}
	t.Setenv("SECURECHAT_MAX_SESSIONS", "3")
	t.Setenv("SECURECHAT_HISTORY_BYTES", "4096")
	t.Setenv("SECURECHAT_HELLO_TIMEOUT", "9s")
	c = serveConfigFor(t).Hub
	if c.MaxSessions != 3 || c.HistoryBytes != 4096 || c.HelloTimeout != 9*time.Second {
		t.Errorf("from the environment: sessions %d, history %d, hello %v", c.MaxSessions, c.HistoryBytes, c.HelloTimeout)
	}
}

func TestServeStoreFlags(t *testing.T) {
	c := serveConfigFor(t)
	if c.Store != "sqlite" || c.HistoryRetained != 0 || c.HistoryMax != 0 {
		t.Errorf("defaults: store %q, retention %v, max %d; want sqlite, keep everything", c.Store, c.HistoryRetained, c.HistoryMax)
	}
	c = serveConfigFor(t, "--history-retention", "720h", "--history-max", "5000")
	if c.HistoryRetained != 720*time.Hour || c.HistoryMax != 5000 {
		t.Errorf("--history-retention 720h --history-max 5000: %v, %d", c.HistoryRetained, c.HistoryMax)
	}
	t.Setenv("SECURECHAT_HISTORY_MAX", "7")
	if c = serveConfigFor(t); c.HistoryMax != 7 {
		t.Errorf("SECURECHAT_HISTORY_MAX=7: %d", c.HistoryMax)
	}
}
