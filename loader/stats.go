package loader

// Stat indexes the balancer's per-CPU counters; it mirrors enum stat_index in
// bpf/include/consts.h (TestStatNamesMatchMap checks the count). Every packet
// increments exactly one counter below StatVerdictMax.
type Stat int

const (
	StatPassNotIP Stat = iota
	StatPassStack
	StatTxIPIP
	StatTxL2
	StatDropMalformed
	StatDropVLANDepth
	StatDropExtDepth
	StatDropFirewallRule
	StatDropFirewallDefault
	StatDropRatePackets
	StatDropRateConns
	StatDropVIPGuard
	StatDropNoBackend
	StatDropFragmentToVIP
	StatDropNoEncapSource
	StatDropEncapFail
	StatDropNoConfig
	StatDropVIPBudget
	StatVerdictMax
)

// Informational counters.
const (
	StatConntrackHit Stat = StatVerdictMax + iota
	StatConntrackInsert
	StatBucketInsert
	StatBucketPromote
	StatBucketPromoteFail
	StatFragment
	StatConntrackPromote
	StatConntrackPromoteFail
	StatConntrackDemote
	StatMax
)

var statNames = [StatMax]string{
	"pass_not_ip", "pass_stack", "tx_ipip", "tx_l2", "drop_malformed", "drop_vlan_depth",
	"drop_ext_depth", "drop_fw_rule", "drop_fw_default", "drop_rate_packets", "drop_rate_conns",
	"drop_vip_guard", "drop_no_backend", "drop_fragment_to_vip", "drop_no_encap_source",
	"drop_encap_fail", "drop_no_config", "drop_vip_budget",
	"conntrack_hit", "conntrack_insert", "bucket_insert", "bucket_promote", "bucket_promote_fail",
	"fragment", "conntrack_promote", "conntrack_promote_fail", "conntrack_demote",
}

func (s Stat) String() string {
	if s < 0 || s >= StatMax {
		return "unknown"
	}
	return statNames[s]
}

// Verdict reports what the counter's packets got: "pass", "tx", "drop", or ""
// for informational counters.
func (s Stat) Verdict() string {
	switch {
	case s == StatPassNotIP || s == StatPassStack:
		return "pass"
	case s == StatTxIPIP || s == StatTxL2:
		return "tx"
	case s < StatVerdictMax:
		return "drop"
	}
	return ""
}

// Stats holds the counters summed over CPUs.
type Stats [StatMax]uint64

// DecapStat mirrors enum decap_stat_index.
type DecapStat int

const (
	DecapPassNotIPIP DecapStat = iota
	DecapPassDecapsulated
	DecapPassNotLocal
	DecapDropMalformed
	DecapDropFail
	DecapDropUntrustedSource
	DecapStatMax
)

// DecapStats holds the decapsulator's counters summed over CPUs.
type DecapStats [DecapStatMax]uint64
