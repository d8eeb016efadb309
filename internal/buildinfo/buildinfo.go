// Package buildinfo names the running securechat build, from the build
// information Go records in the binary.
//
// Its one rule: a version set at link time (override, from -ldflags -X)
// wins over the module version; everything else is read, never guessed.
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// Describe describes this binary: the version (override, or else the
// module's), the VCS revision and time it was built from, whether the tree
// had uncommitted changes, and the Go release, so that a bug report names
// the exact build.
func Describe(override string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return orDefault(override, "(devel)")
	}
	return describeBuild(info, override)
}

// Version is the version alone (override, or else the module's), as the
// client names itself to the server.
func Version(override string) string {
	if info, ok := debug.ReadBuildInfo(); ok {
		return orDefault(override, orDefault(info.Main.Version, "(devel)"))
	}
	return orDefault(override, "(devel)")
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
