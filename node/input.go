package node

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/edgedio/edged/storage"
)

// inputChunk is how many lines of an input file one append carries.
const inputChunk = 4096

// runInputFile appends the lines of the input file to the log of the first
// pipeline's first source. The log's next offset says how many lines earlier
// runs appended (the file source is the log's only writer and appends every
// line, blank ones included, one record each), so those are skipped: the
// position is durable in the same transaction as the lines themselves.
func (n *Node) runInputFile(ctx context.Context) error {
	n.mu.RLock()
	first := n.pipes[n.filePipe]
	n.mu.RUnlock()
	if first == nil || len(first.sources) == 0 {
		return errors.New("no pipeline to feed")
	}
	logName := LogFile
	f, err := os.Open(n.inputFile)
	if err != nil {
		return err
	}
	defer f.Close()
	skip := n.logNext(logName) - 1
	br := bufio.NewReaderSize(f, 64<<10)
	var line uint64
	var chunk [][]byte
	flush := func() error {
		for len(chunk) > 0 {
			_, last, err := n.db.AppendLog(ctx, logName, chunk)
			if errors.Is(err, storage.ErrQuotaExceeded) {
				n.backpressure.Store(true)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
				continue
			}
			if err != nil {
				return err
			}
			n.backpressure.Store(false)
			n.setLogNext(logName, last)
			n.fileLines.Add(uint64(len(chunk)))
			chunk = chunk[:0]
		}
		return nil
	}
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 {
			line++
			if line > skip {
				chunk = append(chunk, bytes.TrimRight(b, "\r\n"))
				if len(chunk) == inputChunk {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", n.inputFile, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := flush(); err != nil {
		return err
	}
	n.fileDone.Store(true)
	n.log.Info("input file appended", "file", n.inputFile, "lines", line, "log", logName)
	return nil
}
