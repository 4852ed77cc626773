package agent

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsExposed(t *testing.T) {
	dp := newFakeDataplane()
	ta := newTestAgent(t, nil, dp)
	if _, err := ta.Apply(context.Background(), policyDoc(100), false); err != nil {
		t.Fatal(err)
	}
	id := ta.rec.BackendIDs()[testBackendAddr(0)]
	dp.mu.Lock()
	dp.counters = Counters{
		Verdicts: map[string]uint64{"tx": 7, "drop": 3},
		Drops:    map[string]uint64{"drop_fw_rule": 2, "drop_rate_packets": 1},
		VIPs:     map[uint32]Traffic{0: {Packets: 7, Bytes: 700, NewFlows: 2}},
		Backends: map[uint32]Traffic{id: {Packets: 5, Bytes: 500, NewFlows: 1}},
		Maps:     []MapFill{{Name: "conntrack", Entries: 2, MaxEntries: 4096}},
		Rules:    []uint64{9},
	}
	dp.mu.Unlock()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(ta.Agent))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeMetrics(ctx, ln, reg, ta.log)
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, want := range []string{
		`infergate_xdp_packets_total{verdict="tx"} 7`,
		`infergate_xdp_drops_total{reason="drop_fw_rule"} 2`,
		`infergate_vip_packets_total{vip="llm"} 7`,
		`infergate_vip_new_flows_total{vip="llm"} 2`,
		`infergate_backend_packets_total{address="198.18.1.1",backend="gpu1",pool="gpus"} 5`,
		`infergate_backend_bytes_total{address="198.18.1.1",backend="gpu1",pool="gpus"} 500`,
		`infergate_backend_weight{backend="gpu2",pool="gpus"} 100`,
		`infergate_backend_healthy{backend="gpu3",pool="gpus"} 1`,
		`infergate_map_entries{map="conntrack"} 2`,
		`infergate_map_max_entries{map="conntrack"} 4096`,
		`infergate_reconcile_total `,
		`infergate_firewall_rule_packets_total{action="deny",rule="scanners"} 9`,
		`infergate_reconcile_errors_total 0`,
		`infergate_backends_unresolved 0`,
		`infergate_policy_info{name="edge",version=`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}
