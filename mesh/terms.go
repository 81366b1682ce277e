package mesh

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// termEntry is one partition's term and the owner it was raised for.
type termEntry struct {
	Term  uint64 `json:"t"`
	Owner string `json:"o"`
}

// termTable maps "pipeline/partition" to its entry. It is not safe for
// concurrent use; Node guards it.
type termTable map[string]termEntry

func termKey(pipeline string, partition int) string {
	return pipeline + "/" + strconv.Itoa(partition)
}

// merge takes, per partition, the higher term; at an equal term the owner
// that sorts last, so every member resolves a conflict the same way. It
// returns the keys that changed.
func (t termTable) merge(o termTable) []string {
	var changed []string
	for k, e := range o {
		cur, ok := t[k]
		if !ok || e.Term > cur.Term || (e.Term == cur.Term && e.Owner > cur.Owner) {
			t[k] = e
			changed = append(changed, k)
		}
	}
	return changed
}

// loadTerms reads the persisted term table; a missing file is an empty
// table.
func loadTerms(path string) (termTable, error) {
	t := termTable{}
	if path == "" {
		return t, nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return t, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%s: %v (delete it to start the terms again from what the peers know)", path, err)
	}
	return t, nil
}

// saveTerms writes the table to path atomically and durably: a temporary
// file, fsync, rename, fsync of the directory.
func saveTerms(path string, t termTable) error {
	if path == "" {
		return nil
	}
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// splitKey is the inverse of termKey.
func splitKey(k string) (string, int, bool) {
	i := strings.LastIndexByte(k, '/')
	if i < 0 {
		return "", 0, false
	}
	p, err := strconv.Atoi(k[i+1:])
	return k[:i], p, err == nil
}
