package storage

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strings"
)

// pageOwner says where a page of the file sits in the B+tree: the bucket
// path that holds it (keys of 8 bytes shown as "#"), its kind and its size
// in pages (1 + overflow).
type pageOwner struct {
	path  string
	kind  string // "branch" or "leaf"
	pages int
}

// walkPages reads the database file at path (its current meta page, then
// every page reachable from the root bucket) and returns the owner of each
// page id. Comparing two walks gives the pages a transaction wrote: bbolt
// never rewrites a page in place, so a changed page has a new id.
func walkPages(path string) (map[uint64]pageOwner, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var best boltMeta
	var root uint64
	for i := 0; i < 2; i++ {
		ps := 4096
		if i == 1 {
			m0, err := parseMeta(data)
			if err == nil {
				ps = int(m0.pageSize)
			}
		}
		if len(data) < (i+1)*ps {
			continue
		}
		m, err := parseMeta(data[i*ps:])
		if err != nil || m.txid < best.txid {
			continue
		}
		best = m
		root = binary.LittleEndian.Uint64(data[i*ps+metaOff+16:])
	}
	if best.pageSize == 0 {
		return nil, fmt.Errorf("%s: no valid meta page", path)
	}
	w := &pageWalker{data: data, ps: int(best.pageSize), out: map[uint64]pageOwner{}}
	if err := w.walk(root, ""); err != nil {
		return nil, err
	}
	return w.out, nil
}

type pageWalker struct {
	data []byte
	ps   int
	out  map[uint64]pageOwner
}

func keyName(k []byte) string {
	if len(k) == 8 {
		return "#"
	}
	for _, c := range k {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("<%x>", k)
		}
	}
	return string(k)
}

func (w *pageWalker) walk(id uint64, path string) error {
	off := int(id) * w.ps
	if off+16 > len(w.data) {
		return fmt.Errorf("page %d past the end", id)
	}
	p := w.data[off:]
	flags := binary.LittleEndian.Uint16(p[8:])
	overflow := binary.LittleEndian.Uint32(p[12:])
	kind := "leaf"
	if flags&0x01 != 0 {
		kind = "branch"
	}
	w.out[id] = pageOwner{path: path, kind: kind, pages: 1 + int(overflow)}
	return w.node(p, path, flags)
}

// node walks the elements of page p (a page of the file or an inline
// bucket's page).
func (w *pageWalker) node(p []byte, path string, flags uint16) error {
	count := int(binary.LittleEndian.Uint16(p[10:]))
	le := binary.LittleEndian
	for i := range count {
		e := p[16+16*i:]
		if flags&0x01 != 0 { // branch: pos, ksize, pgid
			if err := w.walk(le.Uint64(e[8:]), path); err != nil {
				return err
			}
			continue
		}
		eflags, pos, ksize, vsize := le.Uint32(e), int(le.Uint32(e[4:])), int(le.Uint32(e[8:])), int(le.Uint32(e[12:]))
		if eflags&0x01 == 0 {
			continue
		}
		k := e[pos : pos+ksize]
		v := e[pos+ksize : pos+ksize+vsize]
		sub := keyName(k)
		if path != "" {
			sub = path + "/" + sub
		}
		if r := le.Uint64(v); r != 0 {
			if err := w.walk(r, sub); err != nil {
				return err
			}
			continue
		}
		// Inline bucket: its page follows the bucket header; its bytes
		// are part of this page.
		if len(v) > 16 {
			if err := w.node(v[16:], sub+"(inline)", le.Uint16(v[16+8:])); err != nil {
				return err
			}
		}
	}
	return nil
}

// writtenPages returns, by owner, the pages in after that are not in
// before, as "path kind: n" lines sorted, and their total.
func writtenPages(before, after map[uint64]pageOwner) (map[string]int, int) {
	by := map[string]int{}
	total := 0
	for id, o := range after {
		if _, ok := before[id]; ok {
			continue
		}
		by[o.path+" "+o.kind] += o.pages
		total += o.pages
	}
	return by, total
}

func formatPages(by map[string]int) string {
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-50s %d\n", k, by[k])
	}
	return b.String()
}
