package handshake

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a handshake, relay or record layer goroutine
// outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
