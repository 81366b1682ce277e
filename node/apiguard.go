package node

import (
	"net"
	"net/http"
	"strings"
	"time"
)

// The HTTP server's limits. Reads are bounded so a client that trickles its
// headers or body (slowloris) cannot hold a connection and its goroutine for
// ever; writes are not, because POST /api/v1/uplink/flush and the pprof
// profile answer only after their own, caller-chosen timeout.
const (
	// apiReadHeaderTimeout bounds reading a request's headers.
	apiReadHeaderTimeout = 5 * time.Second
	// apiReadTimeout bounds reading a whole request, body included (a
	// pipeline document is at most maxSpecBytes).
	apiReadTimeout = 30 * time.Second
	// apiIdleTimeout closes keep-alive connections idle this long.
	apiIdleTimeout = 2 * time.Minute
	// apiMaxHeaderBytes bounds a request's headers.
	apiMaxHeaderBytes = 64 << 10
)

// hardenServer sets the read timeouts and header limit of the API server.
func hardenServer(srv *http.Server) {
	srv.ReadHeaderTimeout = apiReadHeaderTimeout
	srv.ReadTimeout = apiReadTimeout
	srv.IdleTimeout = apiIdleTimeout
	srv.MaxHeaderBytes = apiMaxHeaderBytes
}

// guardLoopback wraps the API's handler when it listens on a loopback
// address: such an API needs no token, so a web page the user visits could
// reach it through DNS rebinding (a name of the attacker's resolving to
// 127.0.0.1). Browsers send that name in the Host header; a request whose
// Host is not a loopback name or address is answered 421 Misdirected
// Request. APIs on other addresses need a token and are returned as is.
func guardLoopback(addr net.Addr, h http.Handler) http.Handler {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || !ta.IP.IsLoopback() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLoopbackHost(r.Host) {
			writeErr(w, http.StatusMisdirectedRequest, errHostNotLoopback(r.Host))
			return
		}
		h.ServeHTTP(w, r)
	})
}

type errHostNotLoopback string

func (e errHostNotLoopback) Error() string {
	return "Host " + quoteHost(string(e)) + " is not a loopback name: the API listens on loopback only; use localhost, 127.0.0.1 or [::1]"
}

func quoteHost(s string) string {
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}

// isLoopbackHost reports whether a Host header names the loopback
// interface: localhost or a name under .localhost (RFC 6761), or a loopback
// IP literal, with or without a port. An empty Host (HTTP/1.0) passes:
// browsers always send one.
func isLoopbackHost(host string) bool {
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(host, "]"), "["), ".")
	host = strings.ToLower(host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
