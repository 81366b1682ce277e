package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"github.com/edgedio/edged/sink"
	"github.com/edgedio/edged/storage"
	"github.com/edgedio/edged/uplink"
)

// defaultQuota is the disk budget when storage.quotaBytes is 0: what edged
// stores in dataDir now plus half of the free space of its file system.
func defaultQuota(dataDir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dataDir, &st); err != nil {
		return 0 // unknown: no budget rather than a wrong one
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	return dirBytes(dataDir) + free/2
}

// dirBytes sums the sizes of the regular files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// errUplinkFull is the back-pressure of an uplink sink whose spool passed
// uplink.spool_quota with retention backpressure.
var errUplinkFull = errors.New("uplink spool over uplink.spool_quota (retention backpressure)")

// runBudget keeps the disk budget current once a second until ctx ends:
// the bytes of file sinks and of a local uplink directory count against
// storage.quotaBytes with the database's, and an uplink sink with retention
// backpressure whose spool is over its quota stops Ingest until it drains.
func (n *Node) runBudget(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		n.refreshBudget()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) refreshBudget() {
	var ext int64
	n.mu.RLock()
	for _, s := range n.sinks {
		s.mu.Lock()
		if f, ok := s.w.(*sink.File); ok {
			ext += f.DiskBytes()
		}
		s.mu.Unlock()
	}
	full := ""
	for name, u := range n.uploaders {
		if st := u.u.Status(); st.OverQuota && st.Retention == uplink.RetentionBackpressure {
			full = name
		}
	}
	n.mu.RUnlock()
	if uc := n.cfg.uplinkConfig(); uc.Target == "" || uc.Target == "local" {
		if uc.Local.Dir != "" {
			ext += dirBytes(uc.Local.Dir)
		}
	}
	n.db.SetExternalBytes(ext)
	n.externalBytes.Store(ext)
	n.uplinkFull.Store(full)
}

// budgetErr returns the error Ingest refuses input with while an uplink
// sink back-pressures, or nil.
func (n *Node) budgetErr() error {
	if full, _ := n.uplinkFull.Load().(string); full != "" {
		return fmt.Errorf("uplink sink %s: %w: %w", full, errUplinkFull, storage.ErrQuotaExceeded)
	}
	return nil
}
