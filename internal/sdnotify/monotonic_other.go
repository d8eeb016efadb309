//go:build !linux

package sdnotify

// monotonicMicros: systemd runs on Linux only, so elsewhere there is no
// reader of MONOTONIC_USEC.
func monotonicMicros() (uint64, bool) { return 0, false }
