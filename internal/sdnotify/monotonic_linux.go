package sdnotify

import "golang.org/x/sys/unix"

// monotonicMicros reads CLOCK_MONOTONIC, the clock systemd compares
// MONOTONIC_USEC against.
func monotonicMicros() (uint64, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, false
	}
	return uint64(ts.Sec)*1_000_000 + uint64(ts.Nsec)/1000, true
}
