package uplink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Split brain: after a network partition two gateways of a mesh may both
// have owned a partition, each under its own term, and both upload to the
// same store. Every writer records its claim on a partition in the store
// (ownership term, node, and the watermark after which its windows are
// its own) before it uploads, and before each upload drops the rows of its
// batch that a higher claim covers: rows of a lower term whose window ends
// after the higher claim's From. A lower term's rows are never uploaded
// over or beside the higher term's windows once its claim is visible; the
// lower term's windows up to From (the previous owner's committed work,
// which the higher term did not emit) are still uploaded, so nothing
// acknowledged is lost.

// Claim is a writer's right to upload a partition's outputs: the
// ownership term it emitted them under, its node name, and From: the
// windows ending after From (unix ms, an event-time watermark) are its
// own; those ending at or before it were the previous owner's. Claims are
// ordered by term, then node name (the mesh resolves equal terms the same
// way).
type Claim struct {
	Term  uint64
	Owner string
	From  int64
}

// Less reports whether c is a lower claim than o.
func (c Claim) Less(o Claim) bool {
	return c.Term < o.Term || (c.Term == o.Term && c.Owner < o.Owner)
}

// ClaimStore is what a target offers for fencing: creating a small object
// only if it does not exist (atomic: of two concurrent creators one wins),
// and listing the names under a prefix. LocalTarget implements it; any
// ObjectStore (S3, WebHDFS) provides it through ClaimStoreOf (a PUT with
// If-None-Match: *, and ListObjectsV2).
type ClaimStore interface {
	// CreateIfAbsent creates an empty object at key; false when it
	// already existed.
	CreateIfAbsent(ctx context.Context, key string) (bool, error)
	// ListNames returns the last path segment of every object directly
	// under prefix (a key ending in '/'); none when it does not exist.
	ListNames(ctx context.Context, prefix string) ([]string, error)
}

// ClaimScope returns the prefix under which the claims of one partition
// of a pipeline's sink are kept:
//
//	PREFIX/pipeline=P/sink=S/_claims/pPART/
//
// Names starting with '_' are ignored by Hive, Spark and Trino.
func ClaimScope(prefix, pipeline, sink string, partition int) string {
	var b strings.Builder
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		b.WriteString(prefix)
		b.WriteByte('/')
	}
	b.WriteString("pipeline=")
	b.WriteString(escapeSegment(pipeline))
	if sink != "" {
		b.WriteString("/sink=")
		b.WriteString(escapeSegment(sink))
	}
	b.WriteString("/_claims/p")
	b.WriteString(strconv.Itoa(partition))
	b.WriteByte('/')
	return b.String()
}

// claimName is a claim's object name: the term and From (offset so that
// negative values sort first), each zero-padded to 20 digits, then the
// escaped node name.
func claimName(c Claim) string {
	pad := func(v uint64) string {
		t := strconv.FormatUint(v, 10)
		return strings.Repeat("0", 20-len(t)) + t
	}
	return pad(c.Term) + "-" + pad(uint64(c.From)^(1<<63)) + "-" + escapeSegment(c.Owner)
}

func parseClaimName(s string) (Claim, bool) {
	f := strings.SplitN(s, "-", 3)
	if len(f) != 3 || len(f[0]) != 20 || len(f[1]) != 20 {
		return Claim{}, false
	}
	term, err1 := strconv.ParseUint(f[0], 10, 64)
	from, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return Claim{}, false
	}
	return Claim{Term: term, Owner: unescapeSegment(f[2]), From: int64(from ^ (1 << 63))}, true
}

func unescapeSegment(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	return strings.NewReplacer("%2F", "/", "%5C", "\\", "%25", "%").Replace(s)
}

// RecordClaim records c under scope (idempotent).
func RecordClaim(ctx context.Context, cs ClaimStore, scope string, c Claim) error {
	_, err := cs.CreateIfAbsent(ctx, scope+claimName(c))
	return err
}

// ListClaims returns the claims recorded under scope.
func ListClaims(ctx context.Context, cs ClaimStore, scope string) ([]Claim, error) {
	names, err := cs.ListNames(ctx, scope)
	if err != nil {
		return nil, err
	}
	var out []Claim
	for _, n := range names {
		if c, ok := parseClaimName(n); ok {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b Claim) int {
		if a.Less(b) {
			return -1
		}
		if b.Less(a) {
			return 1
		}
		return 0
	})
	return out, nil
}

// Superseded reports whether a row written under mine, whose window ends at
// windowEnd (ok false: the row has no window end), is another node's to
// emit: the claim covering the window (the highest claim, mine included,
// whose From the window ends after) is another node's and higher than
// mine. A row without a window end is never superseded (a possible
// duplicate, never a loss).
//
// A row of a lower term whose window this node's own higher claim covers is
// kept. That is the side of a healed network partition that owned the
// partition before and after it: it emitted the window once, under the
// lower term, and its higher term goes on from that same state, so it does
// not emit the window again; the other side's claim in between covers only
// the windows up to this node's higher From.
func Superseded(claims []Claim, mine Claim, windowEnd int64, ok bool) bool {
	if !ok {
		return false
	}
	cover := mine
	for _, c := range claims {
		if windowEnd > c.From && cover.Less(c) {
			cover = c
		}
	}
	return cover.Owner != mine.Owner
}

// CreateIfAbsent implements ClaimStore: O_EXCL creation, file and
// directory fsynced.
func (t *LocalTarget) CreateIfAbsent(ctx context.Context, key string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if strings.Contains(key, "..") || filepath.IsAbs(key) {
		return false, &TargetError{Kind: ErrRequest, Err: fmt.Errorf("key %q escapes the directory", key)}
	}
	p := filepath.Join(t.Dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return false, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	d, err := os.Open(filepath.Dir(p))
	if err != nil {
		return true, err
	}
	defer d.Close()
	return true, d.Sync()
}

// ListNames implements ClaimStore.
func (t *LocalTarget) ListNames(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	es, err := os.ReadDir(filepath.Join(t.Dir, filepath.FromSlash(prefix)))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range es {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// objectClaims is the ClaimStore of an ObjectStore (S3, WebHDFS): a claim
// is an empty object created with IfNoneMatch, found with ListObjects.
type objectClaims struct{ os ObjectStore }

func (c objectClaims) CreateIfAbsent(ctx context.Context, key string) (bool, error) {
	_, err := c.os.PutObject(ctx, key, strings.NewReader(""), 0, PutOptions{IfNoneMatch: true})
	if errors.Is(err, ErrPreconditionFailed) {
		return false, nil
	}
	return err == nil, err
}

func (c objectClaims) ListNames(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	for oi, err := range c.os.ListObjects(ctx, prefix) {
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		rest := strings.TrimPrefix(oi.Key, prefix)
		if rest != "" && !strings.Contains(rest, "/") && !strings.HasPrefix(rest, ".") {
			out = append(out, rest)
		}
	}
	return out, nil
}

// ClaimStoreOf returns the ClaimStore of a target: the target itself
// (LocalTarget), or its ObjectStore (S3Target, WebHDFSTarget); false when
// it has neither (its uploads cannot be fenced).
func ClaimStoreOf(t Target) (ClaimStore, bool) {
	if cs, ok := t.(ClaimStore); ok {
		return cs, true
	}
	if os, ok := t.(ObjectStore); ok {
		return objectClaims{os}, true
	}
	return nil, false
}
