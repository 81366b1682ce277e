// Package version holds the build version, stamped by the Makefile with
// -ldflags "-X github.com/edgedio/edged/internal/version.Version=...".
package version

// Version is the git description of the build, or "dev".
var Version = "dev"
