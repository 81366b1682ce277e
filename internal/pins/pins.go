//go:build pins

// Package pins keeps the required modules of DESIGN.md pinned in go.mod before
// the packages that use them (ingest/mqtt, mesh, ingest/bus) land. It is behind
// a build tag, so nothing here is compiled into a binary. Delete an import once
// real code imports the module.
package pins

import (
	_ "github.com/hashicorp/memberlist"
)
