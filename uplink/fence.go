package uplink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Split brain: after a network partition two gateways of a mesh may both
// have owned a partition, each under its own term, and both upload. The
// fence keeps the store to one writer per partition from the moment the
// higher claim is visible: every writer records its claim (term, node) in
// the store before its first upload, and before each upload checks that
// no higher claim exists; a lower claim's upload is refused (ErrFenced)
// and never written over or beside the higher term's objects.

// Claim is a writer's right to upload a partition's outputs: the
// ownership term it emitted them under and its node name. Claims are
// ordered by term, then by node name (the mesh resolves equal terms the
// same way).
type Claim struct {
	Term  uint64
	Owner string
}

// Less reports whether c is a lower claim than o.
func (c Claim) Less(o Claim) bool {
	return c.Term < o.Term || (c.Term == o.Term && c.Owner < o.Owner)
}

// ErrFenced is returned by PutFenced when a higher claim than the writer's
// is in the store: the partition is owned by a higher term, whose owner
// uploads these windows; the writer's outputs are superseded.
var ErrFenced = errors.New("fenced: a higher ownership term of this partition uploads to the target")

// ClaimStore is what a target offers for fencing: creating a small object
// only if it does not exist (atomic: of two concurrent creators one wins),
// and listing the names under a prefix. LocalTarget and WebHDFSTarget
// implement it; an S3 target implements it with a conditional PUT
// (If-None-Match: *) and ListObjectsV2.
type ClaimStore interface {
	// CreateIfAbsent creates an empty object at key; false when it
	// already existed.
	CreateIfAbsent(ctx context.Context, key string) (bool, error)
	// ListNames returns the last path segment of every object directly
	// under prefix (a key ending in '/'); none when it does not exist.
	ListNames(ctx context.Context, prefix string) ([]string, error)
}

// FencedTarget is a Target that can refuse uploads of a lower claim.
type FencedTarget interface {
	Target
	// PutFenced records claim under scope (once), and writes the object
	// like Put only if no higher claim is recorded under scope;
	// otherwise it writes nothing and returns an error wrapping
	// ErrFenced. An upload that checked before a higher claim was
	// recorded may still complete: after the higher claim is visible, a
	// lower writer completes at most the one upload it had in flight.
	PutFenced(ctx context.Context, key string, r io.Reader, size int64, scope string, claim Claim) error
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

// claimName is a claim's object name: the term zero-padded to 20 digits,
// '-', the escaped node name; names sort in claim order.
func claimName(c Claim) string {
	t := strconv.FormatUint(c.Term, 10)
	return strings.Repeat("0", 20-len(t)) + t + "-" + escapeSegment(c.Owner)
}

func parseClaimName(s string) (Claim, bool) {
	t, o, ok := strings.Cut(s, "-")
	if !ok || len(t) != 20 {
		return Claim{}, false
	}
	term, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return Claim{}, false
	}
	return Claim{Term: term, Owner: unescapeSegment(o)}, true
}

func unescapeSegment(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	return strings.NewReplacer("%2F", "/", "%5C", "\\", "%25", "%").Replace(s)
}

// Fence makes t a FencedTarget when it is also a ClaimStore; ok is false
// otherwise (uploads are then not fenced).
func Fence(t Target) (FencedTarget, bool) {
	if ft, ok := t.(FencedTarget); ok {
		return ft, true
	}
	cs, ok := t.(ClaimStore)
	if !ok {
		return nil, false
	}
	return &fenced{Target: t, cs: cs, recorded: map[string]Claim{}}, true
}

// fenced implements FencedTarget over a ClaimStore. Like every Target it
// is used by one goroutine at a time.
type fenced struct {
	Target
	cs       ClaimStore
	recorded map[string]Claim // by scope: the highest claim this writer recorded
}

// HighestClaim returns the highest claim recorded under scope.
func HighestClaim(ctx context.Context, cs ClaimStore, scope string) (Claim, bool, error) {
	names, err := cs.ListNames(ctx, scope)
	if err != nil {
		return Claim{}, false, err
	}
	var best Claim
	found := false
	for _, n := range names {
		c, ok := parseClaimName(n)
		if ok && (!found || best.Less(c)) {
			best, found = c, true
		}
	}
	return best, found, nil
}

func (f *fenced) PutFenced(ctx context.Context, key string, r io.Reader, size int64, scope string, claim Claim) error {
	if rec, ok := f.recorded[scope]; !ok || rec.Less(claim) {
		if _, err := f.cs.CreateIfAbsent(ctx, scope+claimName(claim)); err != nil {
			return fmt.Errorf("record claim %s under %s: %w", claimName(claim), scope, err)
		}
		f.recorded[scope] = claim
	}
	best, ok, err := HighestClaim(ctx, f.cs, scope)
	if err != nil {
		return fmt.Errorf("read claims under %s: %w", scope, err)
	}
	if ok && claim.Less(best) {
		return fmt.Errorf("%s (term %d of %s; this node %s has term %d): %w", key, best.Term, best.Owner, claim.Owner, claim.Term, ErrFenced)
	}
	return f.Put(ctx, key, r, size)
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

// CreateIfAbsent implements ClaimStore: an empty temporary file renamed
// to key, which HDFS refuses when key exists.
func (t *WebHDFSTarget) CreateIfAbsent(ctx context.Context, key string) (bool, error) {
	final := t.abs(key)
	tmp := path.Join(path.Dir(final), "."+path.Base(final)+".claim.tmp")
	if err := t.create(ctx, tmp, strings.NewReader(""), 0); err != nil {
		return false, err
	}
	ok, err := t.Rename(ctx, tmp, final)
	if err != nil || !ok {
		t.Delete(context.WithoutCancel(ctx), tmp) // best effort
	}
	if err != nil {
		return false, err
	}
	if !ok {
		if _, serr := t.Stat(ctx, final); serr != nil {
			return false, serr
		}
	}
	return ok, nil
}

// ListNames implements ClaimStore.
func (t *WebHDFSTarget) ListNames(ctx context.Context, prefix string) ([]string, error) {
	fs, err := t.List(ctx, t.abs(prefix))
	var re *RemoteException
	if errors.As(err, &re) && (re.Status == 404 || re.Exception == "FileNotFoundException") {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range fs {
		if f.Type == "FILE" && !strings.HasPrefix(f.PathSuffix, ".") {
			out = append(out, f.PathSuffix)
		}
	}
	slices.Sort(out)
	return out, nil
}
