// Command compare compares the JSON Lines outputs of a crashed run with a
// reference run and prints `kills=K lost=L duplicated=D mismatched=M`; it
// exits 1 unless L, D and M are all 0.
//
// By default outputs are matched by file and "_id", and a line must be
// byte-identical. With -key FILE=f1,f2 the outputs of FILE are matched by
// the values of those fields instead (a logical key: for runs whose epoch
// boundaries depend on arrival timing, so ids may differ between runs), and
// a line must be identical apart from "_id"; within one run a logical key
// seen twice counts as duplicated, whatever the ids.
//
// -rows FILE=N and -sum FILE:FIELD=N check that the reference is complete
// (N distinct keys; FIELD summing to N) before anything is compared; an
// incomplete reference exits 2 (the harness, not the crashed run, failed).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, " ") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

// output is one loaded run: key → line (without "_id" in logical mode).
type output struct {
	lines map[string]string
	dups  int
	sums  map[string]float64 // "file:field" → sum over the lines
}

func load(dir string, keys map[string][]string, sumFields []string) (*output, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl*"))
	o := &output{lines: map[string]string{}, sums: map[string]float64{}}
	for _, f := range files {
		base := filepath.Base(f)
		fields := keys[base]
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				fh.Close()
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			key, line := base+" "+string(m["_id"]), sc.Text()
			if fields != nil {
				var kb strings.Builder
				kb.WriteString(base)
				for _, k := range fields {
					kb.WriteByte(' ')
					kb.Write(m[k])
				}
				key = kb.String()
				delete(m, "_id")
				b, _ := json.Marshal(m) // sorted members: independent of the id
				line = string(b)
			}
			if _, ok := o.lines[key]; ok {
				o.dups++
			}
			o.lines[key] = line
			for _, sf := range sumFields {
				file, field, _ := strings.Cut(sf, ":")
				if file == base {
					if v, err := strconv.ParseFloat(string(bytes.TrimSpace(m[field])), 64); err == nil {
						o.sums[sf] += v
					}
				}
			}
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return o, nil
}

func main() {
	kills := flag.Int("kills", 0, "kills done (printed)")
	var keyFlags, rowFlags, sumFlags multi
	flag.Var(&keyFlags, "key", "FILE=f1,f2: match FILE's outputs by these fields (repeatable)")
	flag.Var(&rowFlags, "rows", "FILE=N: the reference must hold N distinct outputs in FILE (repeatable)")
	flag.Var(&sumFlags, "sum", "FILE:FIELD=N: FIELD must sum to N over the reference's FILE (repeatable)")
	flag.Parse()
	keys := map[string][]string{}
	for _, k := range keyFlags {
		file, fields, ok := strings.Cut(k, "=")
		if !ok || fields == "" {
			fmt.Fprintf(os.Stderr, "compare: -key %q: want FILE=f1,f2\n", k)
			os.Exit(2)
		}
		keys[file] = strings.Split(fields, ",")
	}
	var sumFields []string
	for _, s := range sumFlags {
		f, _, _ := strings.Cut(s, "=")
		sumFields = append(sumFields, f)
	}
	ref, err := load(flag.Arg(0), keys, sumFields)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	got, err := load(flag.Arg(1), keys, sumFields)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if !complete(ref, len(keys) > 0, rowFlags, sumFlags) {
		os.Exit(2)
	}
	lost, mism := 0, 0
	for id, line := range ref.lines {
		g, ok := got.lines[id]
		switch {
		case !ok:
			lost++
			if lost <= 5 {
				fmt.Fprintf(os.Stderr, "lost: %s\n", id)
			}
		case g != line:
			mism++
			if mism <= 5 {
				fmt.Fprintf(os.Stderr, "mismatched: %s: got %s; want %s\n", id, g, line)
			}
		}
	}
	for id := range got.lines {
		if _, ok := ref.lines[id]; !ok {
			mism++ // an output the reference never produced
			if mism <= 5 {
				fmt.Fprintf(os.Stderr, "unexpected: %s\n", id)
			}
		}
	}
	fmt.Fprintf(os.Stderr, "reference outputs=%d crashed-run outputs=%d (duplicates: reference %d, crashed run %d)\n",
		len(ref.lines), len(got.lines), ref.dups, got.dups)
	fmt.Printf("kills=%d lost=%d duplicated=%d mismatched=%d\n", *kills, lost, got.dups, mism)
	if lost+got.dups+mism != 0 || len(ref.lines) == 0 {
		os.Exit(1)
	}
}

// complete checks the reference run against -rows and -sum, and, when
// outputs are matched by logical keys, that it has no duplicates.
func complete(ref *output, logical bool, rows, sums multi) bool {
	ok := !logical || ref.dups == 0
	if !ok {
		fmt.Fprintf(os.Stderr, "compare: the reference run has %d duplicated outputs\n", ref.dups)
	}
	for _, r := range rows {
		file, n, _ := strings.Cut(r, "=")
		want, _ := strconv.Atoi(n)
		have := 0
		for k := range ref.lines {
			if strings.HasPrefix(k, file+" ") {
				have++
			}
		}
		if have != want {
			fmt.Fprintf(os.Stderr, "compare: the reference run is incomplete: %s has %d outputs; want %d\n", file, have, want)
			ok = false
		}
	}
	for _, s := range sums {
		f, n, _ := strings.Cut(s, "=")
		want, _ := strconv.ParseFloat(n, 64)
		if have := ref.sums[f]; have != want {
			fmt.Fprintf(os.Stderr, "compare: the reference run is incomplete: %s sums to %v; want %v\n", f, have, want)
			ok = false
		}
	}
	return ok
}
