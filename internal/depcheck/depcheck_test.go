// Package depcheck enforces the dependency rules of DESIGN.md: engine imports
// only the standard library and its own packages; storage, mesh, uplink and the
// ingest packages never import each other; edgectl imports neither engine nor
// storage; ingest/source, the interface custom sources implement, imports
// only the standard library.
package depcheck

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/edgedio/edged"

// deps returns the transitive imports of the packages matching pattern, or nil
// if the pattern matches no package yet.
func deps(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "list", "-e", "-deps=false", "-f", "{{.ImportPath}}:{{join .Deps \" \"}}", pattern)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(string(out), "matched no packages") {
			return nil
		}
		t.Fatalf("go list %s: %v\n%s", pattern, err, out)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		pkg, ds, _ := strings.Cut(line, ":")
		m[pkg] = strings.Fields(ds)
	}
	return m
}

// imports returns the direct imports of the packages matching pattern.
func imports(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "list", "-e", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", pattern)
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pattern, err, out)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if pkg, ds, ok := strings.Cut(line, ":"); ok {
			m[pkg] = strings.Fields(ds)
		}
	}
	return m
}

func isStd(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".")
}

func TestEngineImportsOnlyStdlibAndItself(t *testing.T) {
	for pkg, ds := range deps(t, "./engine/...") {
		for _, d := range ds {
			switch {
			case isStd(d):
			case strings.HasPrefix(d, module+"/engine"), strings.HasPrefix(d, module+"/internal/"):
				if strings.HasPrefix(d, module+"/internal/depcheck") {
					t.Errorf("%s imports %s", pkg, d)
				}
			default:
				t.Errorf("%s depends on %s: engine may import only the standard library and its own packages", pkg, d)
			}
		}
	}
}

func TestLeavesDoNotImportEachOther(t *testing.T) {
	leaves := []string{"storage", "mesh", "uplink", "ingest"}
	for _, leaf := range leaves {
		for pkg, ds := range deps(t, "./"+leaf+"/...") {
			for _, d := range ds {
				for _, other := range leaves {
					if other == leaf {
						continue
					}
					if strings.HasPrefix(d, module+"/"+other+"/") || d == module+"/"+other {
						t.Errorf("%s imports %s: %s and %s must not import each other", pkg, d, leaf, other)
					}
				}
				if leaf == "ingest" && strings.HasPrefix(d, module+"/ingest/") && dir(pkg) != dir(d) {
					t.Errorf("%s imports %s: ingest sources must not import each other", pkg, d)
				}
			}
		}
	}
}

func dir(p string) string {
	rest := strings.TrimPrefix(p, module+"/ingest/")
	first, _, _ := strings.Cut(rest, "/")
	return first
}

func TestEdgectlTalksToTheAPIOnly(t *testing.T) {
	for pkg, ds := range deps(t, "./cmd/edgectl/...") {
		for _, d := range ds {
			for _, banned := range []string{"/engine", "/storage", "/mesh", "/ingest", "/uplink", "/node", "/pipeline", "/runner", "/sink"} {
				if strings.HasPrefix(d, module+banned) {
					t.Errorf("%s imports %s: edgectl speaks the node API and must not link %s", pkg, d, banned[1:])
				}
			}
		}
	}
}

func TestEngineHasNoIOModule(t *testing.T) {
	for pkg, ds := range deps(t, "./engine/...") {
		for _, d := range ds {
			for _, bad := range []string{"bbolt", "memberlist", "paho", "aws", "minio", "periph", "yaml"} {
				if strings.Contains(d, bad) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}

// The runner gets its log, store, clock and ownership as interfaces: it
// never links the node, storage, ingest, the mesh or the uplink, nor the
// modules behind them.
// (The pipeline spec it reads names local-bus devices and file tails, so
// the config types of ingest/bus and ingest/source come along through
// pipeline; the runner itself imports no ingest package.)
func TestRunnerSeesOnlyInterfaces(t *testing.T) {
	for pkg, ds := range imports(t, "./runner/...") {
		for _, d := range ds {
			for _, banned := range []string{"/node", "/storage", "/ingest", "/mesh", "/uplink", "/sink"} {
				if strings.HasPrefix(d, module+banned) {
					t.Errorf("%s imports %s: the runner takes what it needs as interfaces", pkg, d)
				}
			}
		}
	}
	for pkg, ds := range deps(t, "./runner/...") {
		for _, d := range ds {
			for _, bad := range []string{"bbolt", "memberlist", "paho", "mochi", "minio", module + "/storage", module + "/node", module + "/ingest/mqtt"} {
				if strings.Contains(d, bad) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}

// TestEdgedDoesNotLinkTestOnlyModules: edged writes Parquet with its own
// small writer (package uplink); parquet-go (with google.golang.org/protobuf
// and more, ~3 MB of the arm64 binary) is only an independent reader in
// tests and must not be linked into cmd/edged, nor must the test kits.
func TestEdgedDoesNotLinkTestOnlyModules(t *testing.T) {
	for pkg, ds := range deps(t, "./cmd/edged") {
		for _, d := range ds {
			for _, banned := range []string{"github.com/parquet-go/", "google.golang.org/protobuf", module + "/uplink/s3test", module + "/uplink/webhdfstest"} {
				if strings.HasPrefix(d, banned) {
					t.Errorf("%s depends on %s: test-only code must not be linked into edged (binary size budget)", pkg, d)
				}
			}
		}
	}
}

// The sinks write files and hand MQTT outputs to a Publisher they are given:
// package sink links no MQTT client, no storage and no node.
func TestSinkIsALeaf(t *testing.T) {
	for pkg, ds := range deps(t, "./sink/...") {
		for _, d := range ds {
			for _, bad := range []string{"paho", "mochi", "bbolt", module + "/storage", module + "/node", module + "/ingest", module + "/runner"} {
				if strings.Contains(d, bad) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}

// TestSourceSDKIsStdlibOnly: ingest/source is what a program embedding
// edged implements its own sources against; it links nothing but the
// standard library (the node wires it to storage, never the reverse).
func TestSourceSDKIsStdlibOnly(t *testing.T) {
	for pkg, ds := range deps(t, "./ingest/source/...") {
		for _, d := range ds {
			if !isStd(d) {
				t.Errorf("%s depends on %s: ingest/source may import only the standard library", pkg, d)
			}
		}
	}
}

// TestEdgedHasNoS3SDK: the uplink talks S3 with its own small client
// (uplink/internal/s3, ~25 KB); minio-go and the modules only it pulled in
// were ~1 MB of the stripped arm64 binary, and the AWS SDK is larger.
func TestEdgedHasNoS3SDK(t *testing.T) {
	for pkg, ds := range deps(t, "./cmd/edged") {
		for _, d := range ds {
			for _, banned := range []string{"github.com/minio/", "github.com/aws/"} {
				if strings.HasPrefix(d, banned) {
					t.Errorf("%s depends on %s: use uplink/internal/s3 (binary size budget)", pkg, d)
				}
			}
		}
	}
}
