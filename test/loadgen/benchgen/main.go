// Command benchgen writes the inputs of scripts/bench/l7.sh: a chat
// request body padded to an exact size, and the gateway policy (optionally
// with many tenants plus a keys file with many API keys).
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Bounds.
const (
	maxBodyBytes = 64 << 20
	maxTenants   = 1_000_000
	maxKeys      = 2_000_000
	minBodyBytes = 64
)

// BenchKey is the API key the load generators send; it belongs to tenant-0.
const BenchKey = "sk-bench-0"

// filler is ordinary prose so the tokenizer and inspector do real work.
const filler = "The quarterly report shows steady growth in every region, and the team expects demand to rise again next year as new customers arrive. "

func main() {
	out := flag.String("out", ".", "output directory")
	bodyBytes := flag.Int("body-bytes", 68, "size of body.json in bytes")
	tenants := flag.Int("tenants", 1, "tenants in the policy")
	keys := flag.Int("keys", 1, "API keys (key i belongs to tenant i mod tenants); beyond the first, written to keys.txt")
	upstream := flag.String("upstream", "127.0.0.1:18100", "mock inference server host:port")
	listen := flag.String("listen", "127.0.0.1:18103", "gateway listen address")
	name := flag.String("name", "bench", "file name prefix for policy and keys")
	flag.Parse()
	if err := run(*out, *name, *bodyBytes, *tenants, *keys, *upstream, *listen); err != nil {
		fmt.Fprintln(os.Stderr, "benchgen:", err)
		os.Exit(1)
	}
}

func run(out, name string, bodyBytes, tenants, keys int, upstream, listen string) error {
	if bodyBytes < minBodyBytes || bodyBytes > maxBodyBytes || tenants < 1 || tenants > maxTenants || keys < 1 || keys > maxKeys {
		return fmt.Errorf("out of range: body %d [%d,%d], tenants %d [1,%d], keys %d [1,%d]", bodyBytes, minBodyBytes, maxBodyBytes, tenants, maxTenants, keys, maxKeys)
	}
	if err := writeBody(filepath.Join(out, "body.json"), bodyBytes); err != nil {
		return err
	}
	host, port, ok := strings.Cut(upstream, ":")
	if !ok {
		return fmt.Errorf("-upstream %q is not host:port", upstream)
	}
	hash := func(i int) string {
		h := sha256.Sum256([]byte(fmt.Sprintf("sk-bench-%d", i)))
		return "sha256:" + hex.EncodeToString(h[:])
	}
	f, err := os.Create(filepath.Join(out, name+".yaml"))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, `apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata:
  name: %s
spec:
  pools:
    - name: mock
      backends:
        - name: mock-0
          address: %s
          port: %s
  gateway:
    listen: %s
    models:
      - name: gpt-4o-mini
        price:
          inputPerMTok: 0.15
          outputPerMTok: 0.6
        routes:
          - pool: mock
    inspection:
      rules:
        - {name: email, detector: email, action: redact}
        - {name: card, detector: credit-card, action: redact}
        - {name: ssn, detector: us-ssn, action: block}
        - {name: private-key, detector: private-key, action: block}
        - {name: cloud-key, detector: cloud-key, action: block}
        - {name: injection, detector: injection, action: block}
        - {name: smuggling, detector: unicode-smuggling, action: block}
        - {name: ip, detector: ip-address, action: flag}
    keys:
      - name: key-0
        tenant: tenant-0
        hash: %s
        limits: {requestsPerMinute: 100000000, tokensPerMinute: 100000000000}
    tenants:
`, name, host, port, listen, hash(0))
	for i := range tenants {
		fmt.Fprintf(w, "      - {name: tenant-%d, limits: {requestsPerMinute: 100000000, tokensPerMinute: 100000000000, budgetUSD: 1000000}}\n", i)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	kf, err := os.Create(filepath.Join(out, name+"-keys.txt"))
	if err != nil {
		return err
	}
	kw := bufio.NewWriter(kf)
	for i := 1; i < keys; i++ {
		fmt.Fprintf(kw, "key-%d tenant-%d %s\n", i, i%tenants, hash(i))
	}
	if err := kw.Flush(); err != nil {
		return err
	}
	return kf.Close()
}

func writeBody(path string, size int) error {
	head := `{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"`
	tail := `"}]}`
	n := size - len(head) - len(tail)
	if n < 1 {
		// Shorter than the framing with max_tokens: drop it.
		head = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"`
		n = size - len(head) - len(tail)
	}
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(filler)
	}
	text := strings.TrimSpace(b.String()[:n])
	for len(text) < n {
		text += "."
	}
	body := head + text + tail
	if !json.Valid([]byte(body)) || len(body) != size {
		return fmt.Errorf("built a %d-byte body, want %d", len(body), size)
	}
	return os.WriteFile(path, []byte(body), 0o644)
}
