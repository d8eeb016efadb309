package main

import (
	"runtime/debug"
	"strings"
)

// version is set with -ldflags "-X main.version=..." in release builds;
// otherwise the module version from the build information is used.
var version = ""

// versionString describes this binary: the module version, the VCS
// revision and time it was built from, whether the tree had uncommitted
// changes, and the Go release, so that a bug report names the exact build.
func versionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return orDefault(version, "(devel)")
	}
	return describeBuild(info, version)
}

// moduleVersion is the version alone, as the client names itself to the
// server.
func moduleVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		return orDefault(version, orDefault(info.Main.Version, "(devel)"))
	}
	return orDefault(version, "(devel)")
}

func describeBuild(info *debug.BuildInfo, override string) string {
	v := orDefault(override, orDefault(info.Main.Version, "(devel)"))
	var rev, when, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	parts := []string{v}
	if rev != "" {
		r := "commit " + rev[:min(len(rev), 12)]
		if modified == "true" {
			r += " (modified)"
		}
		if when != "" {
			r += " of " + when
		}
		parts = append(parts, r)
	}
	parts = append(parts, info.GoVersion)
	return strings.Join(parts, ", ")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
