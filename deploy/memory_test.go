package deploy

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/loader"
	"github.com/infergate/infergate/maglev"
)

// heapRoom is what the balancer's memory limit must leave the agent's Go
// heap beside its BPF maps (informer caches, health checker, local API).
const heapRoom = 256 << 20

// TestBalancerMemoryLimitCoversMaps loads the balancer's maps at the sizes
// the DaemonSet's flags set and checks that its memory limit covers what
// the kernel charges for them (each map's memlock, summed over the
// process's map descriptors), plus the Maglev tables of every VIP twice
// (old and new during a swap) and heapRoom. Raising a --max-* flag without
// the limit fails here, not in an OOM-killed pod.
func TestBalancerMemoryLimitCoversMaps(t *testing.T) {
	privtest.Root(t)
	ds := daemonSets(t, renderDeploy(t))["balancer"]
	c := ds.Spec.Template.Spec.Containers[0]
	var cfg loader.Config
	flags := map[string]*uint32{"--max-flows": &cfg.MaxFlows, "--max-flows6": &cfg.MaxFlows6, "--max-buckets": &cfg.MaxBuckets,
		"--max-established-clients": &cfg.MaxEstablishedClients, "--max-backends": &cfg.MaxBackends,
		"--max-vips": &cfg.MaxVIPs, "--max-rules": &cfg.MaxRules}
	for _, a := range c.Args {
		k, v, ok := strings.Cut(a, "=")
		if dst, known := flags[k]; known && ok {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				t.Fatalf("%s: %v", a, err)
			}
			*dst = uint32(n)
		}
	}
	cfg = cfg.WithDefaults()
	before := mapMemlock(t)
	b, err := loader.LoadBalancer(cfg, "")
	if err != nil {
		t.Fatalf("load the balancer at the DaemonSet's sizes: %v", err)
	}
	maps := mapMemlock(t) - before
	b.Close()
	tables := int64(cfg.MaxVIPs) * int64(maglev.MinTableSize) * 4 * 2
	need := maps + tables + heapRoom
	limit := c.Resources.Limits.Memory().Value()
	t.Logf("balancer maps %d MiB on %d CPUs, Maglev tables %d MiB, heap room %d MiB: %d MiB; limit %s",
		maps>>20, numCPU(t), tables>>20, heapRoom>>20, need>>20, c.Resources.Limits.Memory())
	if limit < need {
		t.Errorf("memory limit %s is below %d MiB (maps %d MiB + Maglev tables %d MiB + heap %d MiB): raise it or lower the --max-* flags",
			c.Resources.Limits.Memory(), need>>20, maps>>20, tables>>20, heapRoom>>20)
	}
}

// mapMemlock sums the memlock of every BPF map this process holds open.
func mapMemlock(t *testing.T) int64 {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fdinfo")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, e := range ents {
		f, err := os.Open(filepath.Join("/proc/self/fdinfo", e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		var isMap bool
		var memlock int64
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			switch k {
			case "map_type":
				isMap = true
			case "memlock":
				memlock, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
		f.Close()
		if isMap {
			sum += memlock
		}
	}
	return sum
}

func numCPU(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0
	}
	var lo, hi int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d-%d", &lo, &hi); err != nil {
		return 1
	}
	return hi - lo + 1
}
