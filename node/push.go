package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/edgedio/edged/ingest/source"
	"github.com/edgedio/edged/pipeline"
	"github.com/edgedio/edged/storage"
)

// PushResult is the answer to an HTTP push (POST
// /api/v1/ingest/PIPELINE/SOURCE): what became of the body's lines.
type PushResult struct {
	// Accepted lines are in the durable input log.
	Accepted int `json:"accepted"`
	// Duplicates are lines equal to one logged recently under the same
	// source (a retried request, or a repeated line): not logged again.
	Duplicates int `json:"duplicates"`
	// DeadLettered lines are not JSON objects or arrays; they are stored as
	// dead letters (edgectl deadletters) with the reason.
	DeadLettered int `json:"deadLettered"`
	// Errors give the reasons of the first dead-lettered lines.
	Errors []string `json:"errors,omitempty"`
}

// maxPushErrors bounds PushResult.Errors.
const maxPushErrors = 10

// handlePush accepts a JSON Lines body for a source with an `http:` block.
// It answers 200 only once every line is durable: accepted lines in the
// input log, malformed ones in the dead-letter store, in one transaction.
func (n *Node) handlePush(w http.ResponseWriter, r *http.Request) {
	pname, sname := r.PathValue("pipeline"), r.PathValue("source")
	p := n.pipeByName(pname)
	if p == nil {
		writeErr(w, http.StatusNotFound, fmt.Errorf("pipeline %q does not exist", pname))
		return
	}
	var src *pipeline.Source
	var names []string
	for i := range p.spec.Spec.Sources {
		s := &p.spec.Spec.Sources[i]
		if s.HTTP != nil {
			names = append(names, s.Name)
		}
		if s.Name == sname {
			src = s
		}
	}
	switch {
	case src == nil:
		writeErr(w, http.StatusNotFound, fmt.Errorf("pipeline %q has no source %q%s", pname, sname, pushSources(names)))
		return
	case src.HTTP == nil:
		writeErr(w, http.StatusNotFound, fmt.Errorf("source %q of pipeline %q does not accept HTTP push: give it an http: block%s", sname, pname, pushSources(names)))
		return
	}
	id := "http/" + pname + "/" + sname
	st := n.src.statsOf(id)
	limit := src.HTTP.MaxBody()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		st.errors.Add(1)
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes (http.maxBodyBytes of source %q): nothing was accepted; send smaller batches", limit, sname))
			return
		}
		writeErr(w, http.StatusBadRequest, fmt.Errorf("read body: %w", err))
		return
	}
	tp := inputTopic(pname, src)
	var res PushResult
	var recs [][]byte
	var dls []storage.DeadLetter
	for i, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := checkPushLine(line); err != nil {
			reason := fmt.Sprintf("line %d: %v", i+1, err)
			dls = append(dls, storage.DeadLetter{Pipeline: pname, Source: sname, Topic: tp, Payload: line, Reason: "http push " + reason})
			if len(res.Errors) < maxPushErrors {
				res.Errors = append(res.Errors, reason)
			}
			continue
		}
		recs = append(recs, line)
	}
	if len(recs) == 0 && len(dls) == 0 {
		writeErr(w, http.StatusBadRequest, errors.New("empty body: send JSON Lines, one JSON object (or array) per line"))
		return
	}
	kept, dropped, err := n.appendInput(r.Context(), tp, recs, true, "", nil, dls)
	if err != nil {
		st.errors.Add(1)
		st.lastErr.Store(err.Error())
		switch {
		case errors.Is(err, source.ErrBackpressure), errors.Is(err, source.ErrNotReady):
			w.Header().Set("Retry-After", "1")
			writeErr(w, http.StatusServiceUnavailable, fmt.Errorf("nothing was accepted, retry later: %w", err))
		default:
			writeErr(w, http.StatusInternalServerError, fmt.Errorf("nothing was accepted: %w", err))
		}
		return
	}
	res.Accepted, res.Duplicates, res.DeadLettered = kept, dropped, len(dls)
	st.records.Add(uint64(kept))
	st.duplicates.Add(uint64(dropped))
	st.deadLetters.Add(uint64(len(dls)))
	if len(dls) > 0 {
		n.dlStored.Add(uint64(len(dls)))
	}
	writeJSON(w, http.StatusOK, res)
}

// checkPushLine accepts a JSON object or array (what the json and senml
// decoders take); anything else is a dead letter.
func checkPushLine(line []byte) error {
	t := bytes.TrimSpace(line)
	if len(t) == 0 || t[0] != '{' && t[0] != '[' {
		return errors.New("not a JSON object or array")
	}
	if !json.Valid(t) {
		var v any
		if err := json.Unmarshal(t, &v); err != nil {
			return fmt.Errorf("not valid JSON: %w", err)
		}
		return errors.New("not valid JSON")
	}
	return nil
}

func pushSources(names []string) string {
	if len(names) == 0 {
		return " (it has no source with an http: block)"
	}
	return " (its sources with an http: block: " + strings.Join(names, ", ") + ")"
}
