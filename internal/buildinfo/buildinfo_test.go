package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestDescribeBuild(t *testing.T) {
	info := &debug.BuildInfo{
		GoVersion: "go1.27.3",
		Main:      debug.Module{Path: "securechat", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-11-30T01:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	got := describeBuild(info, "")
	want := "v1.2.3, commit 0123456789ab (modified) of 2026-11-30T01:00:00Z, go1.27.3"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	info.Settings[3].Value = "false"
	if got := describeBuild(info, "v9"); !strings.HasPrefix(got, "v9, commit 0123456789ab of ") {
		t.Errorf("clean tree with -X version: %q", got)
	}
	if got := describeBuild(&debug.BuildInfo{GoVersion: "go1.27.3"}, ""); got != "(devel), go1.27.3" {
		t.Errorf("no VCS information: %q", got)
	}
}
