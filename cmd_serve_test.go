package main

import (
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"securechat/chat"
	"securechat/store"
)

// hubConfigFor runs the serve command's flag parsing on args and returns
// the hub settings it would use.
func hubConfigFor(t *testing.T, args ...string) *chat.Config {
	t.Helper()
	cmd := serveCommand()
	var got *chat.Config
	cmd.Action = func(c *cli.Context) error {
		got = hubConfig(c, nil, "", nil)
		return nil
	}
	app := &cli.App{Name: "securechat", Commands: []*cli.Command{cmd}}
	if err := app.Run(append([]string{"securechat", "serve"}, args...)); err != nil {
		t.Fatalf("serve %v: %v", args, err)
	}
	return got
}

func TestServeHubConfig(t *testing.T) {
	// --ping-interval sets the keepalive only; the hello deadline is its own.
	c := hubConfigFor(t, "--ping-interval", "5s")
	if c.PingInterval != 5*time.Second || c.PingTimeout != 5*time.Second || c.HelloTimeout != 30*time.Second {
		t.Errorf("--ping-interval 5s: ping %v/%v, hello %v; want 5s/5s, 30s", c.PingInterval, c.PingTimeout, c.HelloTimeout)
	}
	c = hubConfigFor(t, "--hello-timeout", "7s")
	if c.HelloTimeout != 7*time.Second || c.PingInterval != 30*time.Second {
		t.Errorf("--hello-timeout 7s: hello %v, ping %v", c.HelloTimeout, c.PingInterval)
	}

	c = hubConfigFor(t)
	if c.MaxSessionsPerUser != 10 || c.HistoryRoomBytes != 1<<20 || c.HistoryBytes != 64<<20 {
		t.Errorf("defaults: sessions %d, room history %d, history %d", c.MaxSessionsPerUser, c.HistoryRoomBytes, c.HistoryBytes)
	}
	// 0 means no limit on the command line, which the hub spells negative.
	c = hubConfigFor(t, "--max-sessions", "0", "--history-room-bytes", "0", "--history-bytes", "0")
	if c.MaxSessionsPerUser >= 0 || c.HistoryRoomBytes >= 0 || c.HistoryBytes >= 0 {
		t.Errorf("0 must mean no limit: sessions %d, room history %d, history %d", c.MaxSessionsPerUser, c.HistoryRoomBytes, c.HistoryBytes)
	}
	t.Setenv("SECURECHAT_MAX_SESSIONS", "3")
	t.Setenv("SECURECHAT_HISTORY_BYTES", "4096")
	t.Setenv("SECURECHAT_HELLO_TIMEOUT", "9s")
	c = hubConfigFor(t)
	if c.MaxSessionsPerUser != 3 || c.HistoryBytes != 4096 || c.HelloTimeout != 9*time.Second {
		t.Errorf("from the environment: sessions %d, history %d, hello %v", c.MaxSessionsPerUser, c.HistoryBytes, c.HelloTimeout)
	}
}

// storeOptionsFor runs the serve command's flag parsing on args and returns
// the chat store settings it would use, or the error.
func storeOptionsFor(t *testing.T, args ...string) (*store.Options, error) {
	t.Helper()
	cmd := serveCommand()
	var got *store.Options
	var gotErr error
	cmd.Action = func(c *cli.Context) error {
		got, gotErr = chatStoreOptions(c, nil)
		return nil
	}
	app := &cli.App{Name: "securechat", Commands: []*cli.Command{cmd}}
	if err := app.Run(append([]string{"securechat", "serve"}, args...)); err != nil {
		t.Fatalf("serve %v: %v", args, err)
	}
	return got, gotErr
}

func TestServeStoreFlags(t *testing.T) {
	o, err := storeOptionsFor(t)
	if err != nil || o.Retention != 0 || o.MaxPerRoom != 0 {
		t.Errorf("defaults: %+v, %v; want keep everything", o, err)
	}
	o, err = storeOptionsFor(t, "--history-retention", "720h", "--history-max", "5000")
	if err != nil || o.Retention != 720*time.Hour || o.MaxPerRoom != 5000 {
		t.Errorf("--history-retention 720h --history-max 5000: %+v, %v", o, err)
	}
	t.Setenv("SECURECHAT_HISTORY_MAX", "7")
	if o, err = storeOptionsFor(t); err != nil || o.MaxPerRoom != 7 {
		t.Errorf("SECURECHAT_HISTORY_MAX=7: %+v, %v", o, err)
	}
	for _, args := range [][]string{{"--history-max", "-1"}, {"--history-retention", "-1h"}, {"--store", "disk"}} {
		if _, err := storeOptionsFor(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
