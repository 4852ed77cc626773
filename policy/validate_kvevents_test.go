package policy

import (
	"strings"
	"testing"
)

const kvPool = minimal + `
  pools:
    - name: p
      backends:
        - {name: b1, address: 198.18.1.1, port: 8000}
        - {name: b2, address: 198.18.1.2, port: 8000}
      kvEvents:`

// A pool's kvEvents with defaults filled reaches the compiled form.
func TestKVEventsCompiled(t *testing.T) {
	_, c, err := Load(strings.NewReader(kvPool + "\n        port: 5557"))
	if err != nil {
		t.Fatal(err)
	}
	k := c.Pools[0].KVEvents
	if k == nil || k.Port != 5557 || k.BlockSize != DefaultKVBlockSize || k.Encoding != DefaultKVEncoding {
		t.Fatalf("compiled kvEvents %+v", k)
	}
}

func TestKVEventsProblems(t *testing.T) {
	for _, tc := range []struct{ name, doc, path, msg string }{
		{"neither", kvPool + " {blockSize: 16} #<", "spec.pools[0].kvEvents", "needs port"},
		{"both", kvPool + "\n        port: 5557\n        endpoints: #<\n          - {backend: b1, endpoint: 'tcp://198.18.1.1:5557'}\n          - {backend: b2, endpoint: 'tcp://198.18.1.2:5557'}",
			"spec.pools[0].kvEvents.endpoints", "not both"},
		{"bad port", kvPool + "\n        port: 70000 #<", "spec.pools[0].kvEvents.port", ""},
		{"missing backend", kvPool + "\n        endpoints: #<\n          - {backend: b1, endpoint: 'tcp://198.18.1.1:5557'}",
			"spec.pools[0].kvEvents.endpoints", `backend "b2" has no endpoint`},
		{"unknown backend", kvPool + "\n        endpoints:\n          - {backend: b1, endpoint: 'tcp://198.18.1.1:5557'}\n          - {backend: b9, endpoint: 'tcp://198.18.1.2:5557'} #<",
			"spec.pools[0].kvEvents.endpoints[1].backend", "not a backend of this pool"},
		{"bind address", kvPool + "\n        endpoints:\n          - {backend: b1, endpoint: 'tcp://*:5557'} #<\n          - {backend: b2, endpoint: 'tcp://198.18.1.2:5557'}",
			"spec.pools[0].kvEvents.endpoints[0].endpoint", "not tcp://host:port"},
		{"ipc", kvPool + "\n        endpoints:\n          - {backend: b1, endpoint: 'ipc:///run/kv'} #<\n          - {backend: b2, endpoint: 'tcp://198.18.1.2:5557'}",
			"spec.pools[0].kvEvents.endpoints[0].endpoint", "not tcp://host:port"},
		{"block size", kvPool + "\n        port: 5557\n        blockSize: 4096 #<", "spec.pools[0].kvEvents.blockSize", "outside [1, 1024]"},
		{"encoding", kvPool + "\n        port: 5557\n        encoding: p50k_base #<", "spec.pools[0].kvEvents.encoding", ""},
		{"seed", kvPool + "\n        port: 5557\n        hashSeed: " + strings.Repeat("s", 300) + " #<", "spec.pools[0].kvEvents.hashSeed", "longer than 256"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, tc.doc, tc.path, tc.msg) })
	}
}
