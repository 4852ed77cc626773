package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/policy"
)

// API keys the agent generates.
const (
	// keyPrefix marks infergate keys so secret scanners can find leaks.
	keyPrefix = "ig_"
	// keyBytes of randomness: 256 bits.
	keyBytes = 32
	// hashPrefixLen hex digits of a key's hash are shown in listings.
	hashPrefixLen = 12
)

// KeyError is a refused key request (answered 400, or 404 for NotFound).
type KeyError struct {
	Message  string
	NotFound bool
}

func (e *KeyError) Error() string { return e.Message }

// CreateKey generates a key for tenant, adds only its SHA-256 hash to the
// policy's gateway.keys and applies that as a new version. The key itself
// is returned once and kept nowhere.
func (a *Agent) CreateKey(ctx context.Context, name, tenant string) (CreatedKey, error) {
	buf := make([]byte, keyBytes)
	if _, err := rand.Read(buf); err != nil {
		return CreatedKey{}, fmt.Errorf("generate key: %w", err)
	}
	key := keyPrefix + base64.RawURLEncoding.EncodeToString(buf)
	sum := sha256.Sum256([]byte(key))
	err := a.editDocument(ctx, func(doc *policy.Document) error {
		for _, k := range doc.Spec.Gateway.Keys {
			if k.Name == name {
				return &KeyError{Message: fmt.Sprintf("a key named %q already exists", name)}
			}
		}
		doc.Spec.Gateway.Keys = append(doc.Spec.Gateway.Keys, policy.APIKey{
			Name: name, Tenant: tenant, Hash: policy.HashPrefix + hex.EncodeToString(sum[:]),
		})
		return nil
	})
	if err != nil {
		return CreatedKey{}, err
	}
	a.log.Info("API key created", "name", name, "tenant", tenant)
	return CreatedKey{Name: name, Tenant: tenant, Key: key}, nil
}

// RevokeKey removes a key from the policy and applies that.
func (a *Agent) RevokeKey(ctx context.Context, name string) error {
	err := a.editDocument(ctx, func(doc *policy.Document) error {
		keys := doc.Spec.Gateway.Keys
		for i, k := range keys {
			if k.Name == name {
				doc.Spec.Gateway.Keys = append(keys[:i:i], keys[i+1:]...)
				return nil
			}
		}
		return &KeyError{Message: fmt.Sprintf("no key named %q", name), NotFound: true}
	})
	if err == nil {
		a.log.Info("API key revoked", "name", name)
	}
	return err
}

// Keys lists the keys of the policy in force, by hash prefix only.
func (a *Agent) Keys() []api.Key {
	out := []api.Key{}
	_, c, ok := a.Current()
	if !ok {
		return out
	}
	for _, k := range c.Gateway.Keys {
		tenant := ""
		if k.Tenant >= 0 && k.Tenant < len(c.Gateway.Tenants) {
			tenant = c.Gateway.Tenants[k.Tenant].Name
		}
		out = append(out, api.Key{Name: k.Name, Tenant: tenant, HashPrefix: hex.EncodeToString(k.Hash[:])[:hashPrefixLen]})
	}
	return out
}

// editDocument applies edit to the document in force and applies the
// result. The edit and the apply run under one lock, so two key requests
// cannot lose each other's change.
func (a *Agent) editDocument(ctx context.Context, edit func(*policy.Document) error) error {
	a.editMu.Lock()
	defer a.editMu.Unlock()
	sp, _, ok := a.Current()
	if !ok {
		return ErrNoPolicy
	}
	doc, err := policy.Decode(bytes.NewReader(sp.Document))
	if err != nil {
		return fmt.Errorf("decode the policy in force: %w", err)
	}
	if err := edit(doc); err != nil {
		return err
	}
	out, err := policy.Marshal(doc)
	if err != nil {
		return err
	}
	_, err = a.applyDocument(ctx, out, false, nil)
	return err
}
