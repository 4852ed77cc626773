package outbound

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"time"
)

// MaxSecretBytes bounds a credential file.
const MaxSecretBytes = 64 << 10

// secretRecheck is how often a credential file is read again: a rotated
// key (a Kubernetes Secret swapped by symlink, a file rewritten) is used
// within this long, without a restart.
const secretRecheck = time.Second

// Secret is a credential from a file or an environment variable. A file is
// read again when it is used and secretRecheck has passed, so a rotated key
// takes effect without a restart; a read that fails keeps the last good
// value (a swap in progress) until the file reads again. Its value is never
// logged: errors name the file only.
type Secret struct {
	file string
	// ReadFile reads the file (os.ReadFile when nil).
	ReadFile func(string) ([]byte, error)
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu      sync.Mutex
	val     []byte
	checked time.Time
}

// NewFileSecret reads file now and again when it changes.
func NewFileSecret(file string) (*Secret, error) {
	s := &Secret{file: file}
	if _, err := s.Bytes(); err != nil {
		return nil, err
	}
	return s, nil
}

// SetFile makes s read file, with val its content just read (so the first
// use does not read it again).
func (s *Secret) SetFile(file, val string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.file, s.val = file, []byte(val)
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	s.checked = now()
}

// NewEnvSecret takes the value of the environment variable env.
func NewEnvSecret(env string, getenv func(string) string) (*Secret, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	v := getenv(env)
	if v == "" {
		return nil, fmt.Errorf("environment variable %s is empty", env)
	}
	return &Secret{val: []byte(v)}, nil
}

// StaticSecret is a fixed value (tests).
func StaticSecret(v string) *Secret { return &Secret{val: []byte(v)} }

// Bytes returns the current value, trimmed of surrounding space. The slice
// must not be modified.
func (s *Secret) Bytes() ([]byte, error) {
	if s.file == "" {
		return s.val, nil
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := now()
	if s.val != nil && t.Sub(s.checked) < secretRecheck {
		return s.val, nil
	}
	read := os.ReadFile
	if s.ReadFile != nil {
		read = s.ReadFile
	}
	b, err := read(s.file)
	switch {
	case err != nil && s.val == nil:
		return nil, fmt.Errorf("read credential file %s: %w", s.file, err)
	case err == nil && len(b) > MaxSecretBytes:
		if s.val == nil {
			return nil, fmt.Errorf("credential file %s is larger than %d bytes", s.file, MaxSecretBytes)
		}
	case err == nil:
		b = bytes.TrimSpace(b)
		if len(b) == 0 && s.val == nil {
			return nil, fmt.Errorf("credential file %s is empty", s.file)
		}
		if len(b) > 0 {
			s.val = b
		}
	}
	s.checked = t
	return s.val, nil
}

// String returns the current value.
func (s *Secret) String() (string, error) {
	b, err := s.Bytes()
	return string(b), err
}
