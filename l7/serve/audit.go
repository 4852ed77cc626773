package serve

import (
	"bytes"
	"fmt"
	"os"
	"sync"
)

// auditFilePerm keeps audit lines (tenants, models, costs) from other users.
const auditFilePerm = 0o600

// maxPartialLine bounds what a writer holds of a line not yet ended; an
// audit record is far smaller.
const maxPartialLine = 1 << 20

// auditFile is one open audit log shared by the gateways that write to it
// while one replaces another. Each gateway gets its own writer, which
// passes on whole lines only, so two gateways' buffered records never
// interleave inside a line. The file closes when the Server and every
// writer have let go of it.
type auditFile struct {
	name string
	mu   sync.Mutex // serialises writes and guards refs
	f    *os.File
	refs int
}

func openAudit(path string) (*auditFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, auditFilePerm)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return &auditFile{name: path, f: f, refs: 1}, nil
}

// path is the file's path; "" for none (a nil *auditFile).
func (a *auditFile) path() string {
	if a == nil {
		return ""
	}
	return a.name
}

// writer returns a new writer on the file; its Close lets go of it.
func (a *auditFile) writer() *lineWriter {
	a.mu.Lock()
	a.refs++
	a.mu.Unlock()
	return &lineWriter{file: a}
}

// release lets go of one reference and closes the file with the last.
func (a *auditFile) release() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refs--
	if a.refs > 0 {
		return nil
	}
	if err := a.f.Close(); err != nil {
		return fmt.Errorf("close audit log: %w", err)
	}
	return nil
}

// lineWriter is one gateway's writer on an auditFile.
type lineWriter struct {
	file    *auditFile
	partial []byte
}

// Write writes the complete lines of partial+p and keeps the rest.
func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	end := bytes.LastIndexByte(p, '\n')
	if end < 0 {
		if len(w.partial)+len(p) > maxPartialLine {
			return 0, fmt.Errorf("audit line longer than %d bytes", maxPartialLine)
		}
		w.partial = append(w.partial, p...)
		return n, nil
	}
	w.file.mu.Lock()
	var err error
	if len(w.partial) > 0 {
		_, err = w.file.f.Write(append(w.partial, p[:end+1]...))
		w.partial = w.partial[:0]
	} else {
		_, err = w.file.f.Write(p[:end+1])
	}
	w.file.mu.Unlock()
	if err != nil {
		return 0, err
	}
	w.partial = append(w.partial, p[end+1:]...)
	return n, nil
}

// Close writes what is left of a line and lets go of the file.
func (w *lineWriter) Close() error {
	var err error
	if len(w.partial) > 0 {
		w.file.mu.Lock()
		_, err = w.file.f.Write(w.partial)
		w.file.mu.Unlock()
		w.partial = nil
	}
	if rerr := w.file.release(); err == nil {
		err = rerr
	}
	return err
}
