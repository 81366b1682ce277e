package engine

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) this process has used. On
// a shared machine it moves less with other processes' load than wall time,
// so benchmarks report a rate per CPU second beside the wall-time rate.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
