package node

import (
	"embed"
	"io/fs"
	"net/http"
)

// dashboardFS holds the dashboard page: plain HTML, CSS and JavaScript, no
// third-party code, nothing fetched from elsewhere at run time.
//
//go:embed dashboard/index.html dashboard/app.js dashboard/app.css
var dashboardFS embed.FS

// dashboardCSP allows the page only its own script, style and API calls: no
// inline script, no other origin, no framing.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// dashboardRoutes serves the dashboard at / and its assets under /ui/. The
// page and assets hold no data and need no token; the page asks for the
// token when the API requires one and sends it with every data request, so
// the data is behind the same auth as the API.
func dashboardRoutes(mux *http.ServeMux) {
	sub, err := fs.Sub(dashboardFS, "dashboard")
	if err != nil {
		panic("BUG: dashboard embed: " + err.Error())
	}
	files := http.FileServerFS(sub)
	secure := func(h http.Handler) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", dashboardCSP)
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Referrer-Policy", "no-referrer")
			w.Header().Set("Cache-Control", "no-cache")
			h.ServeHTTP(w, r)
		}
	}
	mux.HandleFunc("GET /{$}", secure(files))
	mux.Handle("GET /ui/", secure(http.StripPrefix("/ui", files)))
}
