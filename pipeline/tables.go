package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/edgedio/edged/engine"
)

// CheckTables checks the history tables of a set of pipelines (those a node
// runs, or those checked together): every table is written by one step, and
// every step that reads a table (historyJoin, an anomaly baseline) finds it
// written by a pipeline of the set, with the key columns it names, in order
// and of the same types, the columns it reads, and a retention that covers
// how far back it reads. Every problem is reported, each at the reading
// step's file, line and key.
func CheckTables(cs []*Compiled) error {
	type writer struct {
		c *Compiled
		u engine.TableUse
	}
	writers := map[string]writer{}
	var errs []error
	for _, c := range cs {
		for _, u := range c.Plan.Tables() {
			if !u.Write {
				continue
			}
			if w, dup := writers[u.Table]; dup {
				errs = append(errs, c.Spec.errAt(c.Spec.stepPath(u.Step)+".history.table",
					"table %q is already written by %s; a table has one writer", u.Table, w.u.Spec.Writer))
				continue
			}
			writers[u.Table] = writer{c, u}
		}
	}
	names := make([]string, 0, len(writers))
	for n := range writers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, c := range cs {
		s := c.Spec
		for _, u := range c.Plan.Tables() {
			if u.Write {
				continue
			}
			p := s.stepPath(u.Step)
			st := s.step(u.Step)
			cols := p + ".historyJoin.fields"
			if st != nil && st.Anomaly != nil {
				p += ".anomaly.baseline"
				cols = p + ".field"
			} else {
				p += ".historyJoin"
			}
			w, ok := writers[u.Table]
			if !ok {
				have := "no pipeline writes a table"
				if len(names) > 0 {
					have = "tables written: " + strings.Join(names, ", ")
				}
				errs = append(errs, s.errAt(p+".table", "no pipeline writes table %q (%s)", u.Table, have))
				continue
			}
			spec := w.u.Spec
			if !slices.EqualFunc(u.Keys, spec.Keys, func(a, b engine.Field) bool { return a.Name == b.Name }) {
				errs = append(errs, s.errAt(p+".keys", "table %q has key columns [%s] (written by %s); this step names [%s]",
					u.Table, fieldNames(spec.Keys), spec.Writer, fieldNames(u.Keys)))
			} else {
				for i, k := range u.Keys {
					if k.Kind != spec.Keys[i].Kind {
						errs = append(errs, s.errAt(p+".keys", "key %q is a %s here but a %s in table %q (written by %s)",
							k.Name, k.Kind, spec.Keys[i].Kind, u.Table, spec.Writer))
					}
				}
			}
			for _, f := range u.Cols {
				i := slices.IndexFunc(spec.Cols, func(c engine.Field) bool { return c.Name == f.Name })
				switch {
				case i < 0:
					errs = append(errs, s.errAt(cols, "table %q has no column %q (it has %s)", u.Table, f.Name, fieldNames(spec.Cols)))
				case spec.Cols[i].Kind != f.Kind:
					errs = append(errs, s.errAt(cols, "column %q of table %q is a %s, not a %s", f.Name, u.Table, spec.Cols[i].Kind, f.Kind))
				}
			}
			if spec.Keep > 0 && u.Lookback > spec.Keep {
				errs = append(errs, s.errAt(p, "reads %s back but table %q keeps %s (history.keep of %s)",
					fmtMs(u.Lookback), u.Table, fmtMs(spec.Keep), spec.Writer))
			}
		}
	}
	return errors.Join(errs...)
}

func fieldNames(fs []engine.Field) string {
	n := make([]string, len(fs))
	for i, f := range fs {
		n[i] = f.Name
	}
	return strings.Join(n, " ")
}

func fmtMs(ms int64) string {
	const day = 24 * 3600 * 1000
	if ms%day == 0 {
		return fmt.Sprintf("%dd", ms/day)
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

// step returns the step with the name, or nil.
func (s *Spec) step(name string) *Step {
	for i := range s.Spec.Steps {
		if s.Spec.Steps[i].Name == name {
			return &s.Spec.Steps[i]
		}
	}
	return nil
}

// stepPath returns the key path of the named step.
func (s *Spec) stepPath(name string) string {
	for i := range s.Spec.Steps {
		if s.Spec.Steps[i].Name == name {
			return fmt.Sprintf("spec.steps[%d]", i)
		}
	}
	return "spec.steps"
}
