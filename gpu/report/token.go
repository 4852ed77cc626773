package report

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// Bounds on a load report bearer token read from a file. The lower bound
// keeps an operator from protecting the report with a guessable word; the
// upper bound keeps a wrong path (a log file, a binary) from being read
// whole.
const (
	minTokenBytes = 16
	maxTokenBytes = 4096
)

// ReadTokenFile reads a load report bearer token: the file's content with
// surrounding whitespace removed. The GPU host's agent requires it on
// /load and pollers send it.
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("load report token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("load report token %s: %w", path, err)
	}
	if len(b) > maxTokenBytes {
		return "", fmt.Errorf("load report token %s: longer than %d bytes", path, maxTokenBytes)
	}
	tok := string(bytes.TrimSpace(b))
	switch {
	case len(tok) < minTokenBytes:
		return "", fmt.Errorf("load report token %s: shorter than %d bytes", path, minTokenBytes)
	case strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return "", errors.New("load report token " + path + ": contains whitespace or control characters")
	}
	return tok, nil
}

// RequireToken serves h only to requests carrying "Authorization: Bearer
// <token>"; anything else gets 401. The comparison is of SHA-256 digests
// in constant time, so neither the token's bytes nor its length can be
// learned from response times.
func RequireToken(token string, h http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearerToken(r.Header.Get("Authorization"))
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="infergate-load-report"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// bearerToken takes the credential out of "Bearer <token>" (the scheme is
// case-insensitive, RFC 9110). Over-long values are refused unread.
func bearerToken(v string) (string, bool) {
	const scheme = "bearer "
	if len(v) <= len(scheme) || len(v) > len(scheme)+maxTokenBytes || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	tok := strings.TrimSpace(v[len(scheme):])
	return tok, tok != ""
}
