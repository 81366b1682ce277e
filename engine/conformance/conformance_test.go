package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// vectorsPath is CONFORMANCE_VECTORS, or the Spark file. A relative path
// that does not exist from the package directory (where go test runs) is
// taken from the module root, where make and the user run.
func vectorsPath() string {
	if p := os.Getenv("CONFORMANCE_VECTORS"); p != "" {
		if _, err := os.Stat(p); err != nil && !filepath.IsAbs(p) {
			if _, err := os.Stat(filepath.Join("..", "..", p)); err == nil {
				return filepath.Join("..", "..", p)
			}
		}
		return p
	}
	return "testdata/spark_vectors.json"
}

// TestSparkVectors runs every vector through the engine's operators and
// executor, one subtest per vector named after it.
func TestSparkVectors(t *testing.T) {
	path := vectorsPath()
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	passed, failed := 0, 0
	for _, v := range f.Vectors {
		ok := t.Run(v.Name, func(t *testing.T) {
			switch v.Kind {
			case "dstream":
				runDStream(t, &v)
			case "event_time":
				runEventTime(t, &v)
			case "window_assign":
				runAssign(t, &v)
			default:
				t.Fatalf("vector %q: unknown kind %q", v.Name, v.Kind)
			}
		})
		status := "PASS"
		if ok {
			passed++
		} else {
			failed++
			status = "FAIL"
		}
		fmt.Printf("vector %-45s %s\n", v.Name, status)
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
}
