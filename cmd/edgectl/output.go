package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"
)

// table writes aligned columns (two spaces apart).
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cols ...string) {
	for i, c := range cols {
		cols[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cols, "\t"))
}

func (t *table) flush() { t.tw.Flush() }

// emit writes v as JSON or YAML (for -o json|yaml). v is marshalled to JSON
// first, so YAML shows the API's field names.
func emit(w io.Writer, format string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if format == "json" {
		var buf bytes.Buffer
		json.Indent(&buf, data, "", "  ")
		buf.WriteByte('\n')
		_, err := w.Write(buf.Bytes())
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return err
	}
	out, err := yaml.Marshal(yamlValue(generic))
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// yamlValue turns json.Number into int64 or float64 so YAML shows numbers
// as numbers.
func yamlValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = yamlValue(e)
		}
	case []any:
		for i, e := range x {
			x[i] = yamlValue(e)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// trunc shortens s to n runes with an ellipsis.
func trunc(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// fmtRate formats a per-second figure compactly.
func fmtRate(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.1fM", x/1e6)
	case x >= 1e4:
		return fmt.Sprintf("%.1fk", x/1e3)
	case x >= 100 || x == 0:
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.1f", x)
}

// fmtAge formats a duration in seconds as 3s, 4m, 5h, 6d.
func fmtAge(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.0fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// progress draws a progress bar on a terminal, or one line per step
// otherwise (logs, CI).
type progress struct {
	w      io.Writer
	label  string
	total  int
	done   int
	failed int
	tty    bool
}

func newProgress(w io.Writer, label string, total int) *progress {
	p := &progress{w: w, label: label, total: total, tty: isTerminal(w)}
	if p.tty {
		p.draw("")
	}
	return p
}

// step records one finished item and shows it.
func (p *progress) step(item string, err error) {
	p.done++
	status := "ok"
	if err != nil {
		p.failed++
		status = "FAILED"
	}
	if !p.tty {
		fmt.Fprintf(p.w, "%s [%d/%d] %s %s\n", p.label, p.done, p.total, item, status)
		return
	}
	p.draw(item + " " + status)
	if p.done == p.total {
		fmt.Fprintln(p.w)
	}
}

func (p *progress) draw(last string) {
	const width = 30
	k := 0
	if p.total > 0 {
		k = p.done * width / p.total
	}
	bar := strings.Repeat("█", k) + strings.Repeat("░", width-k)
	fail := ""
	if p.failed > 0 {
		fail = fmt.Sprintf(" (%d failed)", p.failed)
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s %s %d/%d%s %s", p.label, bar, p.done, p.total, fail, trunc(last, 30))
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
