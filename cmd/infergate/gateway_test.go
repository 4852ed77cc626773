package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const gatewayPolicyYAML = `apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata:
  name: gw
spec:
  pools:
    - name: local
      backends:
        - name: m1
          address: 127.0.0.1
          port: 18001
  gateway:
    tenants:
      - name: acme
      - name: globex
    models:
      - name: gpt-4o-mini
        routes:
          - pool: local
`

func TestLoadGatewayPolicyWithKeysFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(p, []byte(gatewayPolicyYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("sk-1"))
	keys := filepath.Join(dir, "keys.txt")
	if err := os.WriteFile(keys, []byte("# comment\n\nk1 globex sha256:"+hex.EncodeToString(h[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadGatewayPolicy(p, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Gateway.Keys) != 1 || c.Gateway.Keys[0].Name != "k1" || c.Gateway.Keys[0].Tenant != 1 || c.Gateway.Keys[0].Hash != h {
		t.Fatalf("keys %+v", c.Gateway.Keys)
	}
	for _, bad := range []string{"k1 nobody sha256:" + hex.EncodeToString(h[:]), "k1 acme sha256:abcd", "k1 acme", "k1 acme md5:" + hex.EncodeToString(h[:])} {
		if err := os.WriteFile(keys, []byte(bad+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadGatewayPolicy(p, keys); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}

func TestGatewayCmdNeedsConfig(t *testing.T) {
	cmd := newRootCmd()
	cmd.SetArgs([]string{"gateway"})
	err := cmd.Execute()
	if err == nil || exitCode(err) != exitUsage {
		t.Fatalf("err %v code %d", err, exitCode(err))
	}
}
