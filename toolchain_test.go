package main

import (
	goversion "go/version"
	"runtime"
	"testing"
)

// minimumGo is the first Go release with the standard-library fixes for
// GO-2026-6607 and GO-2026-6809; go.mod's go line says the same.
const minimumGo = "go1.27.3"

func TestBuiltWithFixedGo(t *testing.T) {
	v := runtime.Version()
	if !goversion.IsValid(v) {
		t.Skipf("toolchain %q is not a release; cannot compare it with %s", v, minimumGo)
	}
	if goversion.Compare(v, minimumGo) < 0 {
		t.Fatalf("built with %s, older than %s: set GOTOOLCHAIN=auto (see README)", v, minimumGo)
	}
}
