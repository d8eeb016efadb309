//go:build unix

package tui

import (
	"os"
	"os/signal"
	"syscall"
)

// onWindowChange calls fn, on a goroutine of its own, each time the
// terminal window changes size (SIGWINCH), so that the input is redrawn
// for the new width at once rather than at the next line shown. stop ends
// it.
func onWindowChange(fn func()) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				fn()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
