package node

import (
	"bytes"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Go runtime and process metrics under the names Prometheus' own Go client
// uses (go_*, process_*), so stock dashboards and alerts work. They are read
// from runtime/metrics (no stop-the-world) and /proc/self, with no
// dependency: memory matters on a gateway with a 48 MB budget.

var runtimeSamples = []struct {
	key, name, typ, help string
}{
	{"/sched/goroutines:goroutines", "go_goroutines", "gauge", "Number of goroutines that currently exist."},
	{"/memory/classes/heap/objects:bytes", "go_memstats_heap_alloc_bytes", "gauge", "Bytes of allocated heap objects."},
	{"/memory/classes/total:bytes", "go_memstats_sys_bytes", "gauge", "Bytes of memory obtained from the OS."},
	{"/gc/heap/allocs:bytes", "go_memstats_alloc_bytes_total", "counter", "Total bytes allocated on the heap, even if freed."},
	{"/gc/cycles/total:gc-cycles", "go_gc_cycles_total", "counter", "Completed GC cycles."},
	{"/gc/heap/goal:bytes", "go_gc_heap_goal_bytes", "gauge", "Heap size target for the end of the GC cycle."},
	{"/gc/gomemlimit:bytes", "go_gc_gomemlimit_bytes", "gauge", "Go runtime soft memory limit (memoryLimitMB, GOMEMLIMIT)."},
	{"/cpu/classes/gc/total:cpu-seconds", "go_cpu_gc_seconds_total", "counter", "Estimated CPU time spent in the garbage collector."},
}

var (
	runtimeOnce sync.Once
	runtimeBuf  []metrics.Sample
	runtimeMu   sync.Mutex
	startTime   = time.Now()
)

// writeRuntimeMetrics adds the go_* and process_* families to pw.
func writeRuntimeMetrics(pw *promWriter) {
	runtimeOnce.Do(func() {
		runtimeBuf = make([]metrics.Sample, len(runtimeSamples))
		for i, s := range runtimeSamples {
			runtimeBuf[i].Name = s.key
		}
	})
	runtimeMu.Lock()
	metrics.Read(runtimeBuf)
	vals := make([]float64, len(runtimeBuf))
	for i, s := range runtimeBuf {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			vals[i] = float64(s.Value.Uint64())
		case metrics.KindFloat64:
			vals[i] = s.Value.Float64()
		}
	}
	runtimeMu.Unlock()
	for i, s := range runtimeSamples {
		pw.metric(s.name, s.typ, s.help)
		pw.sample(s.name, vals[i])
	}
	pw.metric("go_info", "gauge", "Information about the Go environment.")
	pw.sample("go_info", 1, "version", runtime.Version())
	pw.metric("go_threads", "gauge", "Number of OS threads created.")
	pw.sample("go_threads", float64(threads()))

	p := readProc()
	pw.metric("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
	pw.sample("process_cpu_seconds_total", p.cpu)
	pw.metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
	pw.sample("process_resident_memory_bytes", p.rss)
	pw.metric("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.")
	pw.sample("process_virtual_memory_bytes", p.vsize)
	pw.metric("process_open_fds", "gauge", "Number of open file descriptors.")
	pw.sample("process_open_fds", p.fds)
	pw.metric("process_max_fds", "gauge", "Maximum number of open file descriptors.")
	pw.sample("process_max_fds", p.maxFDs)
	pw.metric("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.")
	pw.sample("process_start_time_seconds", float64(startTime.UnixMilli())/1000)
}

func threads() int {
	n, _ := runtime.ThreadCreateProfile(nil)
	return n
}

type procStats struct {
	cpu, rss, vsize, fds, maxFDs float64
}

// readProc reads /proc/self; on systems without it the figures are zero.
func readProc() procStats {
	var p procStats
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		// Fields after the command (which may hold spaces), from field 3.
		if i := bytes.LastIndexByte(b, ')'); i > 0 {
			f := strings.Fields(string(b[i+1:]))
			// utime=14, stime=15, vsize=23, rss=24 (1-based) -> index-3.
			if len(f) > 21 {
				const ticks = 100 // USER_HZ on Linux
				ut, _ := strconv.ParseFloat(f[11], 64)
				st, _ := strconv.ParseFloat(f[12], 64)
				p.cpu = (ut + st) / ticks
				p.vsize, _ = strconv.ParseFloat(f[20], 64)
				rss, _ := strconv.ParseFloat(f[21], 64)
				p.rss = rss * float64(os.Getpagesize())
			}
		}
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		p.fds = float64(len(ents))
	}
	if b, err := os.ReadFile("/proc/self/limits"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Max open files") {
				if f := strings.Fields(l); len(f) >= 4 {
					p.maxFDs, _ = strconv.ParseFloat(f[3], 64)
				}
			}
		}
	}
	return p
}
