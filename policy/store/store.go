// Package store keeps the agent's applied policy versions in its state
// directory, so the last good policy is back in force after a restart and
// any recent version can be rolled back to.
//
// Layout (all written atomically: temp file, fsync, rename, directory fsync):
//
//	<dir>/lock                 held (flock) by the one agent using the directory
//	<dir>/index.json           history, newest first, and which entry is current
//	<dir>/versions/<sha256>.yaml  each applied document, named by its content
//	                           (two spellings of one version are two files)
//
// A crash at any point leaves the previous index, hence the last good
// version; stray temp files are removed at Open.
package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/infergate/infergate/policy"
	"golang.org/x/sys/unix"
)

const (
	// MaxHistory bounds the entries kept; older versions' documents are
	// deleted once no kept entry refers to them.
	MaxHistory = 50
	// maxIndexBytes bounds index.json when read back.
	maxIndexBytes = 4 << 20
	indexFile     = "index.json"
	lockFile      = "lock"
	versionsDir   = "versions"
	tmpPrefix     = ".tmp-"
	dirMode       = 0o700
	fileMode      = 0o600
)

// Errors callers test for.
var (
	ErrNoPolicy     = errors.New("no policy is applied")
	ErrNotFound     = errors.New("version not in history")
	ErrLocked       = errors.New("state directory is in use by another agent")
	ErrCorrupt      = errors.New("stored policy is corrupt")
	versionRE       = regexp.MustCompile(`^[0-9a-f]{1,64}$`)
	digestRE        = regexp.MustCompile(`^[0-9a-f]{64}$`)
	errNoPrevious   = fmt.Errorf("%w: there is no earlier version to roll back to", ErrNotFound)
	errNilCompiled  = errors.New("store: nil compiled policy")
	errEmptyVersion = errors.New("store: compiled policy has no version")
)

// Entry is one application of a version. The same version can appear more
// than once (applied, replaced, rolled back to); Seq tells them apart.
type Entry struct {
	Seq       uint64    `json:"seq"`
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	AppliedAt time.Time `json:"appliedAt"`
	// SHA256 of the stored document, checked when it is read back.
	SHA256  string `json:"sha256"`
	Current bool   `json:"-"`
}

type index struct {
	Entries []Entry `json:"entries"` // newest first
	// Current is the Seq of the entry in force; 0 when none (deleted).
	Current uint64 `json:"current"`
	NextSeq uint64 `json:"nextSeq"`
}

// Store is safe for concurrent use; every change is serialised.
type Store struct {
	dir  string
	lock *os.File
	now  func() time.Time

	mu  sync.Mutex
	idx index
}

// Open opens (creating if needed) a state directory and takes its lock, so
// two agents cannot share one.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, versionsDir), dirMode); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, fmt.Errorf("opening state lock: %w", err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	s := &Store{dir: dir, lock: lf, now: time.Now}
	if err := s.removeTemps(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.load(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the directory.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close() // closing drops the flock
	s.lock = nil
	return err
}

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

// removeTemps deletes what an interrupted write left behind.
func (s *Store) removeTemps() error {
	for _, d := range []string{s.dir, filepath.Join(s.dir, versionsDir)} {
		ents, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("reading %s: %w", d, err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				if err := os.Remove(filepath.Join(d, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("removing interrupted write: %w", err)
				}
			}
		}
	}
	return nil
}

func (s *Store) load() error {
	b, err := os.ReadFile(filepath.Join(s.dir, indexFile))
	if errors.Is(err, fs.ErrNotExist) {
		s.idx = index{NextSeq: 1}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading policy index: %w", err)
	}
	if len(b) > maxIndexBytes {
		return fmt.Errorf("%w: index.json is %d bytes", ErrCorrupt, len(b))
	}
	var idx index
	if err := json.Unmarshal(b, &idx); err != nil {
		return fmt.Errorf("%w: index.json: %v", ErrCorrupt, err)
	}
	for _, e := range idx.Entries {
		if !versionRE.MatchString(e.Version) || !digestRE.MatchString(e.SHA256) || e.Seq == 0 || e.Seq >= idx.NextSeq {
			return fmt.Errorf("%w: index.json entry %+v", ErrCorrupt, e)
		}
	}
	s.idx = idx
	return nil
}

// docPath is where a document with this SHA-256 (hex) is kept.
func (s *Store) docPath(digest string) string {
	return filepath.Join(s.dir, versionsDir, digest+".yaml")
}

// writeAtomic replaces path with data so that a crash leaves either the old
// or the new content, never a mixture.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tmpPrefix+filepath.Base(path)+"-")
	if err != nil {
		return fmt.Errorf("creating temp file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if tmp != "" {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(fileMode); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming into %s: %w", path, err)
	}
	tmp = ""
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

func (s *Store) writeIndex(idx index) error {
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding policy index: %w", err)
	}
	return writeAtomic(filepath.Join(s.dir, indexFile), b)
}

func sum(doc []byte) string {
	h := sha256.Sum256(doc)
	return hex.EncodeToString(h[:])
}

func (s *Store) checkOpen() error {
	if s.lock == nil {
		return errors.New("store is closed")
	}
	return nil
}

// Apply serialises an application: with the store's lock held it calls
// apply (which pushes c into the kernel and the gateway) and records the
// version as current only if apply succeeds, so a failed apply leaves the
// running version in force and concurrent applies never interleave.
func (s *Store) Apply(doc []byte, c *policy.Compiled, apply func() error) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return Entry{}, err
	}
	if c == nil {
		return Entry{}, errNilCompiled
	}
	if c.Version == "" || !versionRE.MatchString(c.Version) {
		return Entry{}, errEmptyVersion
	}
	if apply != nil {
		if err := apply(); err != nil {
			return Entry{}, err
		}
	}
	return s.record(doc, c.Name, c.Version)
}

// Save records doc (compiled as c) as the current version.
func (s *Store) Save(doc []byte, c *policy.Compiled) (Entry, error) {
	return s.Apply(doc, c, nil)
}

// record writes the document, then the index naming it current. Called with
// s.mu held.
func (s *Store) record(doc []byte, name, version string) (Entry, error) {
	digest := sum(doc)
	path := s.docPath(digest)
	if existing, err := os.ReadFile(path); err != nil || sum(existing) != digest {
		if err := writeAtomic(path, doc); err != nil {
			return Entry{}, fmt.Errorf("storing policy %s: %w", version, err)
		}
	}
	e := Entry{Seq: s.idx.NextSeq, Name: name, Version: version, AppliedAt: s.now().UTC(), SHA256: digest}
	next := index{Entries: append([]Entry{e}, s.idx.Entries...), Current: e.Seq, NextSeq: e.Seq + 1}
	var dropped []Entry
	if len(next.Entries) > MaxHistory {
		dropped = next.Entries[MaxHistory:]
		next.Entries = next.Entries[:MaxHistory:MaxHistory]
	}
	if err := s.writeIndex(next); err != nil {
		return Entry{}, fmt.Errorf("recording policy %s: %w", version, err)
	}
	s.idx = next
	s.prune(dropped)
	e.Current = true
	return e, nil
}

// prune deletes documents no kept entry refers to. Failures only leave
// files behind, so they are ignored.
func (s *Store) prune(dropped []Entry) {
	kept := map[string]bool{}
	for _, e := range s.idx.Entries {
		kept[e.SHA256] = true
	}
	for _, e := range dropped {
		if !kept[e.SHA256] {
			os.Remove(s.docPath(e.SHA256))
		}
	}
}

func (s *Store) entries() []Entry {
	out := make([]Entry, len(s.idx.Entries))
	for i, e := range s.idx.Entries {
		e.Current = e.Seq == s.idx.Current
		out[i] = e
	}
	return out
}

// History lists entries newest first, the one in force marked Current.
func (s *Store) History() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries()
}

// readDoc reads a version's document and checks it against the entry.
func (s *Store) readDoc(e Entry) ([]byte, error) {
	b, err := os.ReadFile(s.docPath(e.SHA256))
	if err != nil {
		return nil, fmt.Errorf("%w: reading version %s: %v", ErrCorrupt, e.Version, err)
	}
	if sum(b) != e.SHA256 {
		return nil, fmt.Errorf("%w: version %s does not match its checksum", ErrCorrupt, e.Version)
	}
	return b, nil
}

// Current returns the entry in force and its document, or ErrNoPolicy.
func (s *Store) Current() (Entry, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries() {
		if e.Current {
			b, err := s.readDoc(e)
			return e, b, err
		}
	}
	return Entry{}, nil, ErrNoPolicy
}

// Get returns the newest entry for version and its document.
func (s *Store) Get(version string) (Entry, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.find(version)
	if !ok {
		return Entry{}, nil, fmt.Errorf("%w: %s", ErrNotFound, version)
	}
	b, err := s.readDoc(e)
	return e, b, err
}

func (s *Store) find(version string) (Entry, bool) {
	for _, e := range s.entries() {
		if e.Version == version {
			return e, true
		}
	}
	return Entry{}, false
}

// Previous returns the newest entry older than the current one with a
// different version: what "rollback previous" goes back to.
func (s *Store) Previous() (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.previous()
}

func (s *Store) previous() (Entry, error) {
	es := s.entries()
	cur := -1
	for i, e := range es {
		if e.Current {
			cur = i
			break
		}
	}
	if cur < 0 {
		// Nothing in force (deleted): the newest entry is the previous one.
		if len(es) > 0 {
			return es[0], nil
		}
		return Entry{}, errNoPrevious
	}
	for _, e := range es[cur+1:] {
		if e.Version != es[cur].Version {
			return e, nil
		}
	}
	return Entry{}, errNoPrevious
}

// SetCurrent makes a version from history current again (a rollback),
// recorded as a new entry at the top of the history. version may be
// "previous". apply, when not nil, puts it in force first (see Apply); it
// receives the document and the entry rolled back to.
func (s *Store) SetCurrent(version string, apply func(doc []byte, e Entry) error) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return Entry{}, err
	}
	var target Entry
	if version == "previous" {
		e, err := s.previous()
		if err != nil {
			return Entry{}, err
		}
		target = e
	} else {
		e, ok := s.find(version)
		if !ok {
			return Entry{}, fmt.Errorf("%w: %s", ErrNotFound, version)
		}
		target = e
	}
	doc, err := s.readDoc(target)
	if err != nil {
		return Entry{}, err
	}
	if apply != nil {
		if err := apply(doc, target); err != nil {
			return Entry{}, err
		}
	}
	return s.record(doc, target.Name, target.Version)
}

// Clear records that no policy is in force (policy delete); history stays.
// apply, when not nil, runs first under the lock; Clear records nothing if
// it fails.
func (s *Store) Clear(apply func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	if s.idx.Current == 0 {
		return ErrNoPolicy
	}
	if apply != nil {
		if err := apply(); err != nil {
			return err
		}
	}
	next := s.idx
	next.Entries = append([]Entry(nil), s.idx.Entries...)
	next.Current = 0
	if err := s.writeIndex(next); err != nil {
		return fmt.Errorf("clearing policy: %w", err)
	}
	s.idx = next
	return nil
}
