package main

import (
	"strings"
	"testing"
)

func TestVersionFlag(t *testing.T) {
	code, stdout, _ := runUser(t, "--version")
	if code != exitOK || !strings.HasPrefix(stdout, "securechat version ") || !strings.Contains(stdout, "go1.") {
		t.Errorf("--version: exit %d, %q", code, stdout)
	}
}
