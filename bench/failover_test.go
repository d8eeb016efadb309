package bench

import (
	"context"
	"slices"
	"testing"
	"time"

	"securechat/transport"
)

func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{line: func(l string) { got = append(got, l) }}
	for _, p := range []string{"one\ntw", "o", "\n\nthree\nfour"} {
		w.Write([]byte(p))
	}
	if want := []string{"one", "two", "", "three"}; !slices.Equal(got, want) {
		t.Errorf("lines %q, want %q (an unfinished line waits)", got, want)
	}
}

func TestRunFailoverConfig(t *testing.T) {
	ok := FailoverConfig{Command: []string{"false"}, Transport: transport.TCP, Nodes: 2, Clients: 2, Kills: 1, Timeout: time.Second}
	for _, bad := range []func(c *FailoverConfig){
		func(c *FailoverConfig) { c.Command = nil },
		func(c *FailoverConfig) { c.Nodes = 1 },
		func(c *FailoverConfig) { c.Nodes = MaxFailoverNodes + 1 },
		func(c *FailoverConfig) { c.Clients = 1 },
		func(c *FailoverConfig) { c.Kills = 0 },
	} {
		c := ok
		bad(&c)
		if _, err := RunFailover(context.Background(), c); err == nil {
			t.Errorf("RunFailover(%+v) ran", c)
		}
	}
	// A serve command that exits at once is reported, not waited for.
	if _, err := RunFailover(context.Background(), ok); err == nil {
		t.Error("RunFailover with nodes that exit at once succeeded")
	}
}
