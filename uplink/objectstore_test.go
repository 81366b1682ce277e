package uplink

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgedio/edged/uplink/s3test"
	"github.com/edgedio/edged/uplink/webhdfstest"
)

// testObjectStore is the contract of ObjectStore that every store meets
// (the mesh's fencing relies on it): metadata comes back from HeadObject,
// a missing object is ErrNotFound, listings are by prefix in key order,
// deletes are idempotent, and of racing IfNoneMatch writers exactly one
// wins while the losers change nothing.
func testObjectStore(t *testing.T, store ObjectStore) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	put := func(key, body string, o PutOptions) error {
		_, err := store.PutObject(ctx, key, strings.NewReader(body), int64(len(body)), o)
		return err
	}
	if err := put("fence/p3/term", "owner gw-1", PutOptions{Metadata: map[string]string{"edged-term": "7", "edged-node": "gw-1"}}); err != nil {
		t.Fatal(err)
	}
	oi, err := store.HeadObject(ctx, "fence/p3/term")
	if err != nil {
		t.Fatal(err)
	}
	if oi.Key != "fence/p3/term" || oi.Size != 10 || oi.Modified.IsZero() ||
		oi.Metadata["edged-term"] != "7" || oi.Metadata["edged-node"] != "gw-1" || len(oi.Metadata) != 2 {
		t.Fatalf("HeadObject = %+v; want the key, 10 bytes, a time and the two metadata", oi)
	}
	if _, err := store.HeadObject(ctx, "fence/absent"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "fence/absent") {
		t.Fatalf("HeadObject(missing) = %v; want ErrNotFound naming the key", err)
	}
	if _, err := store.HeadObject(ctx, "fence/p3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("HeadObject(a key's parent) = %v; want ErrNotFound", err)
	}
	if err := put("x", "y", PutOptions{Metadata: map[string]string{"Edged_Term": "1"}}); err == nil || !strings.Contains(err.Error(), "Edged_Term") {
		t.Fatalf("put with a bad metadata name = %v; want an error naming it", err)
	}

	for _, k := range []string{"fence/a", "fence/p3/b", "fence.x", "fence/p30", "other/fence/c"} {
		if err := put(k, k, PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(prefix string) []string {
		t.Helper()
		var keys []string
		for o, err := range store.ListObjects(ctx, prefix) {
			if err != nil {
				t.Fatalf("ListObjects(%q): %v", prefix, err)
			}
			if o.Key == "fence/a" && o.Size != 7 {
				t.Errorf("listed %+v; want size 7", o)
			}
			keys = append(keys, o.Key)
		}
		return keys
	}
	for prefix, want := range map[string][]string{
		"fence/":     {"fence/a", "fence/p3/b", "fence/p3/term", "fence/p30"},
		"fence/p3":   {"fence/p3/b", "fence/p3/term", "fence/p30"},
		"fence/p3/":  {"fence/p3/b", "fence/p3/term"},
		"":           {"fence.x", "fence/a", "fence/p3/b", "fence/p3/term", "fence/p30", "other/fence/c"},
		"nothing/":   nil,
		"fence/p3/t": {"fence/p3/term"},
	} {
		if got := list(prefix); !slices.Equal(got, want) {
			t.Errorf("ListObjects(%q) = %v; want %v", prefix, got, want)
		}
	}

	if err := store.DeleteObject(ctx, "fence/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.HeadObject(ctx, "fence/a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("HeadObject after DeleteObject = %v; want ErrNotFound", err)
	}
	if err := store.DeleteObject(ctx, "fence/a"); err != nil {
		t.Fatalf("DeleteObject(missing) = %v; want nil", err)
	}

	if err := put("fence/p3/term", "owner gw-2", PutOptions{IfNoneMatch: true, Metadata: map[string]string{"edged-term": "8"}}); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("IfNoneMatch on an existing key = %v; want ErrPreconditionFailed", err)
	}
	if oi, err := store.HeadObject(ctx, "fence/p3/term"); err != nil || oi.Metadata["edged-term"] != "7" || oi.Size != 10 {
		t.Fatalf("after a refused write HeadObject = %+v, %v; want the first object", oi, err)
	}
	const racers = 6
	errs := make(chan error, racers)
	start := make(chan struct{})
	for i := range racers {
		body := bytes.Repeat([]byte{byte('a' + i)}, 256<<10)
		go func() {
			<-start
			_, err := store.PutObject(ctx, "fence/p4/term", bytes.NewReader(body), int64(len(body)), PutOptions{IfNoneMatch: true})
			errs <- err
		}()
	}
	close(start)
	won := 0
	for range racers {
		if err := <-errs; err == nil {
			won++
		} else if !errors.Is(err, ErrPreconditionFailed) {
			t.Errorf("racer: %v; want success or ErrPreconditionFailed", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing IfNoneMatch writes won; want 1", won, racers)
	}
	if got := list("fence/p4/"); !slices.Equal(got, []string{"fence/p4/term"}) {
		t.Fatalf("after the race ListObjects = %v; want only the winner (no temporary files)", got)
	}
}

func TestObjectStoreS3(t *testing.T) {
	srv := s3test.Start(t)
	testObjectStore(t, objectStore(t, srv, "conformance"))
}

func TestObjectStoreWebHDFS(t *testing.T) {
	srv := webhdfstest.New()
	defer srv.Close()
	var store ObjectStore = NewWebHDFSTarget(WebHDFSConfig{NameNode: srv.URL, Root: "/edged"}, nil)
	testObjectStore(t, store)

	_, err := store.PutObject(context.Background(), "k", strings.NewReader("x"), 1, PutOptions{IfMatch: "anything"})
	var te *TargetError
	if !errors.As(err, &te) || te.Kind != ErrRequest || !strings.Contains(err.Error(), "If-Match is not supported") {
		t.Fatalf("IfMatch on WebHDFS = %v; want a request error saying it is not supported", err)
	}
	for p := range srv.Files() {
		if strings.HasSuffix(p, ".tmp") {
			t.Errorf("temporary file %s left behind", p)
		}
	}
}
