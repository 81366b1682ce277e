package storage_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/edgedio/edged/engine"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgedio/edged/storage"
)

const crashChildEnv = "EDGED_STORAGE_CRASH_CHILD"

// testExecEnv names a program (an emulator such as qemu-arm-static) that
// TestCrashRecovery runs its child under, like go test -exec does for the
// test binary itself.
const testExecEnv = "EDGED_TEST_EXEC"

// TestCrashChild is the child process of TestCrashRecovery: it appends to the
// input log (from two goroutines, so group commits mix) and runs epochs in a
// loop, printing each committed epoch, until it is killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("child of TestCrashRecovery only")
	}
	o := storage.DefaultOptions() // real fsyncs
	o.GroupMaxDelay = time.Millisecond
	db, err := storage.Open(path, o)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	ctx := context.Background()
	x, err := newRecoveryExecutor(db)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	go func() {
		for i := 0; ; i++ {
			if _, _, err := db.AppendLog(ctx, "in", [][]byte{logRecord(i), logRecord(i + 1)}); err != nil {
				return
			}
		}
	}()
	for i := 0; ; i++ {
		batch := make([][]byte, 1+i%17)
		for j := range batch {
			batch[j] = logRecord(i*31 + j)
		}
		if _, _, err := db.AppendLog(ctx, "in", batch); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		if _, err := runLogEpoch(ctx, x, db, 50); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("epoch", x.Epoch())
	}
}

// TestCrashRecovery SIGKILLs a child that appends and commits at random
// moments (seeded; EDGED_CRASH_SEED replays a seed), then checks that the
// database opens and holds a consistent history: checkpoint epochs contiguous,
// every committed epoch's outputs in the spool, equal byte for byte to an
// uninterrupted run over the same log, and the input position within the log.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("EDGED_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (EDGED_CRASH_SEED=%d replays it)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 0))
	path := filepath.Join(t.TempDir(), "edged.db")
	lastSeen := uint64(0)
	const kills = 5
	for k := 0; k < kills; k++ {
		lines := 1 + r.IntN(40)
		args := []string{os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1"}
		if q := os.Getenv(testExecEnv); q != "" {
			args = append([]string{q}, args...)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			if errors.Is(err, syscall.ENOEXEC) {
				t.Skipf("cannot re-execute the test binary %s (%v): a foreign-architecture binary under user-mode emulation without binfmt_misc; set %s=qemu-arm-static (or qemu-aarch64-static) to run the child under the emulator", os.Args[0], err, testExecEnv)
			}
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		deadline := time.Now().Add(60 * time.Second)
		for n := 0; n < lines && sc.Scan(); n++ {
			line := sc.Text()
			if strings.HasPrefix(line, "error") {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("kill %d: child: %s", k, line)
			}
			if e, ok := strings.CutPrefix(line, "epoch "); ok {
				lastSeen, _ = strconv.ParseUint(e, 10, 64)
			}
			if time.Now().After(deadline) {
				break
			}
		}
		cmd.Process.Kill() // SIGKILL
		cmd.Wait()
	}
	db := openDB(t, path, testOptions())
	cp, err := db.LastCheckpoint("rec", 0)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Epoch < lastSeen {
		t.Fatalf("checkpoint epoch %d is before epoch %d reported committed: a commit was lost", cp.Epoch, lastSeen)
	}
	// Epochs of the raw sink's outputs are contiguous and give the records each
	// epoch consumed.
	raw := spoolAll(t, db, "raw")
	perEpoch := make([]int, cp.Epoch)
	for _, s := range raw {
		id, err := engine.ParseOutputID(s.id)
		if err != nil {
			t.Fatal(err)
		}
		e := id.Epoch
		if e < 1 || e > cp.Epoch {
			t.Fatalf("spooled output %s of epoch %d; checkpoint is at epoch %d", s.id, e, cp.Epoch)
		}
		perEpoch[e-1]++
	}
	consumed := 0
	for e, n := range perEpoch {
		if n == 0 {
			t.Fatalf("epoch %d of %d has no spooled input: epochs are not contiguous", e+1, cp.Epoch)
		}
		consumed += n
	}
	if want := cp.Input["in"] - 1; uint64(consumed) != want {
		t.Fatalf("spooled records %d; checkpoint position says %d were consumed", consumed, want)
	}
	st, _ := db.Stats()
	if cp.Input["in"] > st.Log["in"].Next {
		t.Fatalf("checkpoint position %d is past the log's end %d", cp.Input["in"], st.Log["in"].Next)
	}
	compareSpool(t, db, referenceOutputs(t, db, perEpoch))
	t.Logf("%d kills, %d epochs, %d records consumed of %d logged", kills, cp.Epoch, consumed, st.Log["in"].Next-1)
}
