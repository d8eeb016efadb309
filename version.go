package main

import "securechat/internal/buildinfo"

// version is set with -ldflags "-X main.version=..." in release builds;
// otherwise the module version from the build information is used.
var version = ""

// versionString describes this binary for --version (see buildinfo.Describe).
func versionString() string { return buildinfo.Describe(version) }

// moduleVersion is the version alone, as the client names itself to the
// server.
func moduleVersion() string { return buildinfo.Version(version) }
