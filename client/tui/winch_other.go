//go:build !unix

package tui

// onWindowChange does nothing where there is no SIGWINCH: the UI then
// notices a new size before the next line it shows.
func onWindowChange(func()) (stop func()) { return func() {} }
