package agent

import (
	"errors"
	"strings"

	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/policy/store"
)

// FileStore keeps applied versions in the state directory through
// policy/store.
type FileStore struct {
	S *store.Store
}

// Save records p as the current version.
func (f FileStore) Save(p StoredPolicy) (StoredPolicy, error) {
	e, err := f.S.Save(p.Document, &policy.Compiled{Name: p.Name, Version: p.Version})
	if err != nil {
		return StoredPolicy{}, err
	}
	return StoredPolicy{Name: e.Name, Version: e.Version, AppliedAt: e.AppliedAt, Current: true}, nil
}

// Current returns the version in force.
func (f FileStore) Current() (StoredPolicy, bool, error) {
	e, doc, err := f.S.Current()
	if errors.Is(err, store.ErrNoPolicy) {
		return StoredPolicy{}, false, nil
	}
	if err != nil {
		return StoredPolicy{}, false, err
	}
	return StoredPolicy{Name: e.Name, Version: e.Version, AppliedAt: e.AppliedAt, Document: doc, Current: true}, true, nil
}

// History lists versions newest first, without documents.
func (f FileStore) History() ([]StoredPolicy, error) {
	es := f.S.History()
	out := make([]StoredPolicy, len(es))
	for i, e := range es {
		out[i] = StoredPolicy{Name: e.Name, Version: e.Version, AppliedAt: e.AppliedAt, Current: e.Current}
	}
	return out, nil
}

// Get finds a version by itself or a unique prefix of it.
func (f FileStore) Get(version string) (StoredPolicy, bool, error) {
	full := ""
	for _, e := range f.S.History() {
		if strings.HasPrefix(e.Version, version) {
			if full != "" && full != e.Version {
				return StoredPolicy{}, false, &KeyError{Message: "version prefix " + version + " is ambiguous"}
			}
			full = e.Version
		}
	}
	if full == "" {
		return StoredPolicy{}, false, nil
	}
	e, doc, err := f.S.Get(full)
	if errors.Is(err, store.ErrNotFound) {
		return StoredPolicy{}, false, nil
	}
	if err != nil {
		return StoredPolicy{}, false, err
	}
	return StoredPolicy{Name: e.Name, Version: e.Version, AppliedAt: e.AppliedAt, Document: doc}, true, nil
}

// ClearCurrent records that no policy is in force.
func (f FileStore) ClearCurrent() error {
	if err := f.S.Clear(nil); err != nil && !errors.Is(err, store.ErrNoPolicy) {
		return err
	}
	return nil
}
