//go:build race

package cipher

// The race detector allocates on its own, so allocation counts mean nothing
// under it.
const raceEnabled = true
