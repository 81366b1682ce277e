package uplink

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// SetSchema declares the output schema of pipeline's rows. Every object of
// the pipeline encoded afterwards has exactly its columns (Parquet; JSON
// Lines carry their own types), and rows that do not fit it are dead
// letters. nil removes the declaration (the columns are then inferred per
// batch).
//
// The schema is also kept in Config.JournalDir (when set), so that after a
// restart rows spooled earlier are written with the schema they were
// produced under even before their pipeline declares it again. A failure
// to keep it is returned; the schema is in use anyway. Safe for concurrent
// use.
func (u *Uploader) SetSchema(pipeline string, s *Schema) error {
	u.mu.Lock()
	old := u.schemas[pipeline]
	if s == nil {
		delete(u.schemas, pipeline)
	} else {
		u.schemas[pipeline] = s
	}
	u.mu.Unlock()
	if u.cfg.JournalDir == "" || s.Equal(old) {
		return nil
	}
	p := u.schemaPath(pipeline)
	if s == nil {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("uplink: forget schema of pipeline %q: %w", pipeline, err)
		}
		return nil
	}
	data, err := json.Marshal(s)
	if err == nil {
		err = writeFileSync(p, data)
	}
	if err != nil {
		return fmt.Errorf("uplink: keep schema of pipeline %q: %w", pipeline, err)
	}
	if old != nil {
		u.log.Info("uplink: output schema changed", "pipeline", pipeline, "from", old.Version(), "to", s.Version(), "schema", s.String())
	}
	return nil
}

// schema returns the declared schema of pipeline, or nil.
func (u *Uploader) schema(pipeline string) *Schema {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.schemas[pipeline]
}

func (u *Uploader) schemaPath(pipeline string) string {
	return filepath.Join(u.cfg.JournalDir, "schemas", url.PathEscape(pipeline)+".json")
}

// loadSchemas reads the schemas kept by SetSchema.
func (u *Uploader) loadSchemas() {
	if u.cfg.JournalDir == "" {
		return
	}
	dir := filepath.Join(u.cfg.JournalDir, "schemas")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		pipeline, err := url.PathUnescape(name)
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		var s Schema
		if err == nil {
			err = json.Unmarshal(data, &s)
		}
		if err != nil {
			u.log.Warn("uplink: ignoring unreadable kept schema", "path", filepath.Join(dir, e.Name()), "err", err)
			continue
		}
		u.schemas[pipeline] = &s
	}
}

// writeFileSync writes data to path through a synced temporary file and a
// rename, creating the directory.
func writeFileSync(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
