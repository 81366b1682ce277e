// Command compare compares the JSON Lines outputs of a crashed run with a
// reference run, by "_id" and content, and prints
// `kills=K lost=L duplicated=D mismatched=M`; it exits 1 unless L, D and M
// are all 0.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func load(dir string) (map[string]string, int, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl*"))
	out := map[string]string{}
	dups := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, 0, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m struct {
				ID string `json:"_id"`
			}
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				return nil, 0, fmt.Errorf("%s: %w", f, err)
			}
			key := filepath.Base(f) + " " + m.ID
			if _, ok := out[key]; ok {
				dups++
			}
			out[key] = sc.Text()
		}
		fh.Close()
	}
	return out, dups, nil
}

func main() {
	kills := flag.Int("kills", 0, "kills done (printed)")
	flag.Parse()
	ref, _, err := load(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	got, dup, err := load(flag.Arg(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	lost, mism := 0, 0
	for id, line := range ref {
		g, ok := got[id]
		switch {
		case !ok:
			lost++
		case g != line:
			mism++
		}
	}
	for id := range got {
		if _, ok := ref[id]; !ok {
			mism++ // an output the reference never produced
		}
	}
	fmt.Fprintf(os.Stderr, "reference outputs=%d crashed-run outputs=%d\n", len(ref), len(got))
	fmt.Printf("kills=%d lost=%d duplicated=%d mismatched=%d\n", *kills, lost, dup, mism)
	if lost+dup+mism != 0 || len(ref) == 0 {
		os.Exit(1)
	}
}
