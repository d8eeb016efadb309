package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"securechat/transport"
)

// TestRunStormDialer runs the storm dialer's side against an in-process
// server: it storms from its configuration line until its input ends, and
// then reports a load whose outcomes account for every connection begun.
func TestRunStormDialer(t *testing.T) {
	srv := startTestServer(t, transport.TCP, 2)
	line, err := json.Marshal(StormDialerConfig{Transport: "tcp", Addr: srv.Target.Addr, Fingerprint: srv.Target.Fingerprint,
		Victims: []string{AccountName("bench", 0)}, Sources: 2, Rate: 100, WrongPasswords: 1, MaxInFlight: 16})
	if err != nil {
		t.Fatal(err)
	}
	in, feed := io.Pipe()
	var out bytes.Buffer
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { done <- RunStormDialer(ctx, in, &out) }()
	if _, err := feed.Write(append(line, '\n')); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let it begin some connections
	feed.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var load StormLoad
	if err := json.Unmarshal(out.Bytes(), &load); err != nil {
		t.Fatalf("report %q: %v", out.String(), err)
	}
	if load.Started == 0 || !load.ReusedKeyShares || load.Sources != 2 {
		t.Fatalf("load %+v: want connections begun, by 2 sources, with reused key shares", load)
	}
	if sum := load.Refused + load.AuthFailed + load.LoggedIn + load.CutAtEnd; sum != load.Started {
		t.Errorf("outcomes add up to %d of %d connections begun: %+v", sum, load.Started, load)
	}
}

// TestRunStormDialerBadConfiguration: a configuration out of bounds, or
// none, is an error before any connection.
func TestRunStormDialerBadConfiguration(t *testing.T) {
	for _, in := range []string{
		"",
		"not json\n",
		`{"transport":"tcp","addr":"127.0.0.1:1","victims":["a"],"sources":0,"rate":1,"wrong_passwords":1,"max_in_flight":1}` + "\n",
		`{"transport":"carrier pigeon","addr":"127.0.0.1:1","victims":["a"],"sources":1,"rate":1,"wrong_passwords":1,"max_in_flight":1}` + "\n",
	} {
		var out bytes.Buffer
		if err := RunStormDialer(context.Background(), strings.NewReader(in), &out); err == nil || out.Len() != 0 {
			t.Errorf("input %q: err %v, output %q; want an error and no report", in, err, out.String())
		}
	}
}
