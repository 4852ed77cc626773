package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/infergate/infergate/internal/httpserve"
	"github.com/infergate/infergate/policy"
)

// Local API bounds.
const (
	// maxRequestBytes bounds a request body (policy documents are bounded
	// again, more tightly, by policy.Decode).
	maxRequestBytes = 8 << 20
	// apiReadTimeout bounds reading a request from the socket.
	apiReadTimeout = 30 * time.Second
	// apiApplyTimeout bounds one apply (route and neighbour resolution).
	apiApplyTimeout = time.Minute
	// apiShutdownGrace is how long requests in flight may finish once the
	// agent stops.
	apiShutdownGrace = 5 * time.Second
	socketMode       = 0o600
	socketDirMode    = 0o700
)

// Handler serves the local API (see contracts: agent local API).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, a.Status()) })
	mux.HandleFunc("GET /v1/backends", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, a.Backends()) })
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, _ *http.Request) {
		st, err := a.Stats()
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /v1/policy", func(w http.ResponseWriter, _ *http.Request) {
		sp, _, ok := a.Current()
		if !ok {
			writeError(w, &NotFoundError{What: ErrNoPolicy.Error()})
			return
		}
		writeJSON(w, http.StatusOK, PolicyVersion{Name: sp.Name, Version: sp.Version, AppliedAt: sp.AppliedAt, Document: string(sp.Document), Current: true})
	})
	mux.HandleFunc("POST /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
		if err != nil {
			writeError(w, &badRequest{fmt.Sprintf("read body: %v", err)})
			return
		}
		if len(body) > maxRequestBytes {
			writeError(w, &badRequest{fmt.Sprintf("policy document over %d bytes", maxRequestBytes)})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), apiApplyTimeout)
		defer cancel()
		res, err := a.Apply(ctx, body, r.URL.Query().Get("dryRun") == "true")
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("DELETE /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		if err := a.DeletePolicy(r.Context()); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/policy/history", func(w http.ResponseWriter, _ *http.Request) {
		hist, err := a.o.Store.History()
		if err != nil {
			writeError(w, err)
			return
		}
		out := make([]PolicyVersion, 0, len(hist))
		for _, h := range hist {
			out = append(out, PolicyVersion{Name: h.Name, Version: h.Version, AppliedAt: h.AppliedAt, Current: h.Current})
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /v1/policy/rollback", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), apiApplyTimeout)
		defer cancel()
		res, err := a.Rollback(ctx, r.URL.Query().Get("to"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("POST /v1/drain", func(w http.ResponseWriter, r *http.Request) {
		on, err := strconv.ParseBool(r.URL.Query().Get("on"))
		if err != nil {
			writeError(w, &badRequest{"on must be true or false"})
			return
		}
		if err := a.SetDrain(on); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, a.Status())
	})
	mux.HandleFunc("GET /v1/keys", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, a.Keys()) })
	mux.HandleFunc("POST /v1/keys", func(w http.ResponseWriter, r *http.Request) {
		var req KeyRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, &badRequest{fmt.Sprintf("key request: %v", err)})
			return
		}
		if req.Name == "" || req.Tenant == "" {
			writeError(w, &badRequest{"a key needs a name and a tenant"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), apiApplyTimeout)
		defer cancel()
		k, err := a.CreateKey(ctx, req.Name, req.Tenant)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, k)
	})
	mux.HandleFunc("DELETE /v1/keys/{name}", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), apiApplyTimeout)
		defer cancel()
		if err := a.RevokeKey(ctx, r.PathValue("name")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError maps an error to its status: invalid input 400 with every
// problem, missing things 404, anything else (the node failed) 500.
func writeError(w http.ResponseWriter, err error) {
	resp := ErrorResponse{Error: err.Error()}
	code := http.StatusInternalServerError
	var (
		ve  *policy.ValidationError
		ie  *InvalidError
		nf  *NotFoundError
		ke  *KeyError
		bad *badRequest
	)
	switch {
	case errors.As(err, &ve):
		code, resp.Problems = http.StatusBadRequest, ve.Problems
	case errors.As(err, &ie):
		code, resp.Problems = http.StatusBadRequest, ie.Problems
	case errors.As(err, &nf), errors.Is(err, ErrNoPolicy):
		code = http.StatusNotFound
	case errors.As(err, &ke):
		code = http.StatusBadRequest
		if ke.NotFound {
			code = http.StatusNotFound
		}
	case errors.As(err, &bad):
		code = http.StatusBadRequest
	}
	writeJSON(w, code, resp)
}

// ListenUnix opens the API socket: a missing directory is created 0700, a stale
// socket left by a dead agent is removed (a live one is refused), and the
// socket is 0600, so only root reaches the API.
func ListenUnix(path string) (net.Listener, error) {
	// A directory the agent creates is 0700; an existing one (say /tmp)
	// is left as it is: the socket's own 0600 is what keeps others out.
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, socketDirMode); err != nil {
			return nil, fmt.Errorf("socket directory: %w", err)
		}
		if err := os.Chmod(dir, socketDirMode); err != nil {
			return nil, fmt.Errorf("socket directory: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; not removing it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use: another agent is running", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	// Create the socket with no access for anyone but its owner from the
	// first moment, not only after a chmod.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, socketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx ends, then shuts down gracefully and
// removes a Unix socket.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: apiReadTimeout, ReadTimeout: apiReadTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	err := httpserve.Run(ctx, srv, ln, apiShutdownGrace)
	if ctx.Err() != nil && strings.HasPrefix(ln.Addr().Network(), "unix") {
		_ = os.Remove(ln.Addr().String())
	}
	return err
}
