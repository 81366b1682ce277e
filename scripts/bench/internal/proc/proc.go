// Package proc reads a process's CPU time and peak memory from /proc, the
// way the MQTT benchmark counts them for every process it measures: user +
// system clock ticks from /proc/PID/stat at the start and at the end of the
// same interval, and VmHWM from /proc/PID/status.
package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// CPUTicks returns utime+stime of pid (0: this process) in clock ticks
// (USER_HZ, 100 per second on Linux).
func CPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(path(pid, "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields count from the ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no command name", path(pid, "stat"))
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %d fields", path(pid, "stat"), len(f)+2)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: utime %q stime %q", path(pid, "stat"), f[11], f[12])
	}
	return u + s, nil
}

// HWMKB returns the peak resident set size (VmHWM) of pid in KiB.
func HWMKB(pid int) (int64, error) {
	b, err := os.ReadFile(path(pid, "status"))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no VmHWM", path(pid, "status"))
}

func path(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return "/proc/" + strconv.Itoa(pid) + "/" + file
}
