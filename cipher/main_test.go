package cipher

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts (readers, writers, accept loops) must end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
