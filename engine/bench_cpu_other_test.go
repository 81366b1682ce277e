//go:build !linux

package engine

import "time"

// processCPU is not measured outside Linux (0: the rate per CPU second is not
// reported).
func processCPU() time.Duration { return 0 }
