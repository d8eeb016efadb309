package transport_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"securechat/transport"
	"securechat/transport/transporttest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestConformance runs the shared suite against every registered transport.
func TestConformance(t *testing.T) {
	names := transport.Names()
	if len(names) == 0 {
		t.Fatal("no transports registered")
	}
	for _, name := range names {
		tr, err := transport.Lookup(name)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", name, err)
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// A shorter close wait keeps the cases in which a peer never
			// ends its stream (nettest's CloseTimeout) quick.
			transporttest.TestTransport(t, tr, &transport.Options{CloseTimeout: time.Second})
		})
	}
}

func TestRegistry(t *testing.T) {
	if got := transport.Names(); !slices.Equal(got, []string{"quic", "tcp"}) {
		t.Errorf("Names() = %v, want [quic tcp]", got)
	}
	for _, tr := range []transport.Transport{transport.TCP, transport.QUIC} {
		got, err := transport.Lookup(tr.Name())
		if err != nil || got != tr {
			t.Errorf("Lookup(%q) = %v, %v; want the registered transport", tr.Name(), got, err)
		}
	}
	_, err := transport.Lookup("websocket")
	if err == nil || !strings.Contains(err.Error(), `"websocket"`) || !strings.HasPrefix(err.Error(), "transport: ") {
		t.Errorf("Lookup of an unknown name: err = %v, want a transport error naming it", err)
	}
}

func TestRegisterDuplicatePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("registering a second \"tcp\" did not panic")
		}
	}()
	transport.Register(transport.TCP)
}
