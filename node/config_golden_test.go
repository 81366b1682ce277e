package node

import (
	"flag"
	"testing"

	"github.com/edgedio/edged/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/bad")

// TestBadConfigsGolden checks the exact messages edged gives for every file
// of the catalogue testdata/bad (NAME.yaml, messages in NAME.golden): every
// problem at once, each line FILE:LINE: key: message, no Go type names.
// go test ./node -run TestBadConfigsGolden -update rewrites the golden files.
func TestBadConfigsGolden(t *testing.T) {
	testkit.BadInputGolden(t, "testdata/bad/*.yaml", 5, func(f string) error {
		_, err := LoadConfig(f)
		return err
	}, []string{"node.", "uplink.Config", "time.Duration", "!!", "unmarshal", "Config"}, *update)
}
