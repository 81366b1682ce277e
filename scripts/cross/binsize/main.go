// Command binsize reports what an unstripped Go binary is made of: the sizes
// of its symbols (what `go tool nm -size` prints) summed per package and per
// module, counting only bytes that are in the file (BSS is left out).
//
//	binsize [-top N] [-modmap FILE] BINARY
//
// FILE has lines "importpath modulepath" (go list -deps -f '{{.ImportPath}}
// {{with .Module}}{{.Path}}{{end}}'); packages it does not list are "std".
package main

import (
	"bufio"
	"debug/elf"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() {
	top := flag.Int("top", 25, "rows per table")
	modmap := flag.String("modmap", "", "`file` mapping import paths to modules")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: binsize [-top N] [-modmap FILE] BINARY")
		os.Exit(2)
	}
	if err := run(os.Stdout, flag.Arg(0), *modmap, *top); err != nil {
		fmt.Fprintln(os.Stderr, "binsize:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, bin, modmap string, top int) error {
	f, err := elf.Open(bin)
	if err != nil {
		return err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return fmt.Errorf("%s: %w (build without -s -w)", bin, err)
	}
	mods := map[string]string{}
	if modmap != "" {
		data, err := os.ReadFile(modmap)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			if p, m, ok := strings.Cut(sc.Text(), " "); ok && m != "" {
				mods[p] = m
			}
		}
	}
	byPkg := map[string]uint64{}
	var total uint64
	for _, s := range syms {
		if int(s.Section) <= 0 || int(s.Section) >= len(f.Sections) || s.Size == 0 {
			continue
		}
		if f.Sections[s.Section].Type == elf.SHT_NOBITS { // .bss, .noptrbss: not in the file
			continue
		}
		byPkg[strings.ReplaceAll(pkgOf(s.Name), "%2e", ".")] += s.Size
		total += s.Size
	}
	byMod := map[string]uint64{}
	for p, n := range byPkg {
		m := "std"
		switch {
		case strings.HasPrefix(p, "("):
			m = p
		case mods[p] != "":
			m = mods[p]
		case p == "main":
			m = "main"
		}
		byMod[m] += n
	}
	st, err := os.Stat(bin)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s: %d bytes unstripped\n\n", bin, st.Size())
	secs := map[string]uint64{}
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && s.Type != elf.SHT_NOBITS {
			secs[s.Name] = s.Size
		}
	}
	table(w, "section (loaded, in the stripped binary too)", secs, sumOf(secs), 8)
	fmt.Fprintf(w, "\nsymbols with a size (text, rodata, data): %d bytes; .gopclntab is not attributed\n\n", total)
	table(w, "module", byMod, total, top)
	fmt.Fprintln(w)
	table(w, "package", byPkg, total, top)
	return nil
}

func table(w io.Writer, what string, m map[string]uint64, total uint64, top int) {
	type row struct {
		k string
		n uint64
	}
	rows := make([]row, 0, len(m))
	for k, n := range m {
		rows = append(rows, row{k, n})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].n > rows[j].n || rows[i].n == rows[j].n && rows[i].k < rows[j].k })
	fmt.Fprintf(w, "%10s %6s  %s\n", "bytes", "share", what)
	for i, r := range rows {
		if i == top {
			break
		}
		fmt.Fprintf(w, "%10d %5.1f%%  %s\n", r.n, 100*float64(r.n)/float64(total), r.k)
	}
}

// pkgOf returns the import path of a Go symbol name, or a parenthesized bucket
// for linker-generated symbols.
func pkgOf(name string) string {
	switch {
	case strings.HasPrefix(name, "type:"), strings.HasPrefix(name, "go:itab"):
		return "(type descriptors and itabs)"
	case name == "runtime.pclntab", name == "runtime.findfunctab", strings.HasPrefix(name, "go:func."):
		return "(pclntab and func metadata)"
	case strings.HasPrefix(name, "go:"):
		return "(other linker data)"
	}
	if i := strings.IndexByte(name, '['); i >= 0 { // generic instantiation
		name = name[:i]
	}
	slash := strings.LastIndexByte(name, '/')
	if dot := strings.IndexByte(name[slash+1:], '.'); dot >= 0 {
		return name[:slash+1+dot]
	}
	return "(unnamed)"
}

func sumOf(m map[string]uint64) uint64 {
	var t uint64
	for _, n := range m {
		t += n
	}
	return t
}
