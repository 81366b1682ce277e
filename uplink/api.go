package uplink

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Handler serves the node API of one or more uploaders (by sink name), for
// the node to mount under /api/v1/uplink:
//
//	GET  .../status          {"sink": Status, ...}
//	POST .../flush[?sink=S]  flushes (all sinks, or S); 200 {"flushed":[...]}
//	                         or 504 with {"error": ...} after ?timeout= (default 30s)
func Handler(uploaders map[string]*Uploader) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		out := make(map[string]Status, len(uploaders))
		for name, u := range uploaders {
			out[name] = u.Status()
		}
		writeAPI(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /flush", func(w http.ResponseWriter, r *http.Request) {
		timeout := 30 * time.Second
		if s := r.URL.Query().Get("timeout"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				writeAPI(w, http.StatusBadRequest, map[string]string{"error": "timeout: want a positive duration like 30s"})
				return
			}
			timeout = d
		}
		sink := r.URL.Query().Get("sink")
		if _, ok := uploaders[sink]; sink != "" && !ok {
			writeAPI(w, http.StatusNotFound, map[string]string{"error": "unknown sink " + sink})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		flushed := []string{}
		for name, u := range uploaders {
			if sink != "" && name != sink {
				continue
			}
			if err := u.Flush(ctx); err != nil {
				writeAPI(w, http.StatusGatewayTimeout, map[string]any{"error": name + ": " + err.Error(), "flushed": flushed})
				return
			}
			flushed = append(flushed, name)
		}
		writeAPI(w, http.StatusOK, map[string]any{"flushed": flushed})
	})
	return mux
}

func writeAPI(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
