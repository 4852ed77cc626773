package agent

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/infergate/infergate/maglev"
	"github.com/infergate/infergate/policy"
)

// firstBackendID is the lowest backend ID handed out: 0 stays free so a
// zeroed table slot never names a real backend.
const firstBackendID = 1

// Reconciler converges the data plane to desired state. It remembers what it
// wrote, so it writes only what changed; a change that fails half way is
// undone step by step in reverse, leaving the previous state in force.
type Reconciler struct {
	dp Dataplane

	mu sync.Mutex
	// Known reports which parts of the kernel state are known; after an
	// adoption, firewall and classes are not read back and are rewritten
	// once.
	fwKnown, classesKnown, localKnown bool
	fw                                fwState
	classes                           classState
	local                             []netip.Addr
	ids                               map[netip.Addr]uint32
	backends                          map[uint32]BackendEntry
	vips                              map[VIPKey]vipState
	lastID                            uint32
}

type fwState struct {
	defaultDeny bool
	rules       []policy.CompiledRule
}

type classState struct {
	aggV4, aggV6 int
	classes      []policy.CompiledClass
}

type vipState struct {
	entry  VIPEntry
	table  []uint32 // nil when unknown (adopted)
	inputs string   // what table was built from
}

// NewReconciler starts from empty kernel maps.
func NewReconciler(dp Dataplane) *Reconciler {
	return &Reconciler{dp: dp, ids: map[netip.Addr]uint32{}, backends: map[uint32]BackendEntry{}, vips: map[VIPKey]vipState{}}
}

// Adopt seeds the reconciler from maps a previous agent left pinned, so
// backend IDs (which established connections refer to) and VIP indices stay
// the same and unchanged entries are not rewritten.
func (r *Reconciler) Adopt() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	bs, err := r.dp.Backends()
	if err != nil {
		return fmt.Errorf("read pinned backends: %w", err)
	}
	vs, err := r.dp.VIPs()
	if err != nil {
		return fmt.Errorf("read pinned VIPs: %w", err)
	}
	for id, b := range bs {
		if old, dup := r.ids[b.Address]; dup {
			return fmt.Errorf("pinned backend table holds %s twice (IDs %d and %d)", b.Address, old, id)
		}
		r.ids[b.Address] = id
		r.backends[id] = b
		r.lastID = max(r.lastID, id)
	}
	for k, v := range vs {
		r.vips[k] = vipState{entry: v}
	}
	return nil
}

// op is one data plane write and the write that undoes it.
type op struct {
	what     string
	do, undo func() error
	commit   func()
}

// Stats says what one Apply wrote.
type Stats struct {
	Writes int
}

// Apply converges the data plane to d. It returns the number of writes.
// When a write fails, the writes before it are undone and the error says
// what failed; the remembered state stays the previous one.
func (r *Reconciler) Apply(d *Desired) (Stats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops, err := r.plan(d)
	if err != nil {
		return Stats{}, err
	}
	for i, o := range ops {
		if err := o.do(); err != nil {
			var undoErrs []error
			for j := i - 1; j >= 0; j-- {
				if ops[j].undo == nil {
					continue
				}
				if uerr := ops[j].undo(); uerr != nil {
					undoErrs = append(undoErrs, fmt.Errorf("undo %s: %w", ops[j].what, uerr))
				}
			}
			err = fmt.Errorf("%s: %w", o.what, err)
			if len(undoErrs) > 0 {
				return Stats{}, fmt.Errorf("%w; rolling back also failed, the data plane may be mixed: %w", err, errors.Join(undoErrs...))
			}
			return Stats{}, fmt.Errorf("%w (previous state restored)", err)
		}
	}
	for _, o := range ops {
		if o.commit != nil {
			o.commit()
		}
	}
	return Stats{Writes: len(ops)}, nil
}

// plan computes the writes from the remembered state to d, in an order
// that keeps every intermediate state consistent: backends before the VIPs
// that use them, VIPs removed before their backends.
func (r *Reconciler) plan(d *Desired) ([]op, error) {
	var ops []op
	dp := r.dp

	// Backend IDs: keep known ones, hand new addresses the next free ID
	// after the last one used, so a freed ID is not soon reused by another
	// host that stale conntrack entries could reach.
	ids := make(map[netip.Addr]uint32, len(d.Backends))
	used := map[uint32]bool{}
	for a := range d.Backends {
		if id, ok := r.ids[a]; ok {
			ids[a] = id
			used[id] = true
		}
	}
	for id := range r.backends {
		used[id] = true
	}
	maxID := dp.MaxBackends()
	lastID := r.lastID
	newAddrs := sortedAddrs(d.Backends)
	for _, a := range newAddrs {
		if _, ok := ids[a]; ok {
			continue
		}
		id, ok := nextFree(lastID, maxID, used)
		if !ok {
			return nil, fmt.Errorf("backend table full: %d IDs in use", len(used))
		}
		ids[a] = id
		used[id] = true
		lastID = id
	}

	// VIP indices, stable per key.
	vipIdx := map[VIPKey]uint32{}
	usedIdx := map[uint32]bool{}
	for k, v := range r.vips {
		if _, keep := d.VIPs[k]; keep {
			vipIdx[k] = v.entry.Index
		}
		usedIdx[v.entry.Index] = true
	}
	for _, k := range sortedVIPKeys(d.VIPs) {
		if _, ok := vipIdx[k]; ok {
			continue
		}
		var i uint32
		for usedIdx[i] {
			i++
		}
		vipIdx[k] = i
		usedIdx[i] = true
	}

	// Build every table before touching anything, so a bad table fails
	// the whole change up front.
	// A table whose inputs (IDs, weights, keys) did not change is reused:
	// Maglev is deterministic, and a resync should not cost a rebuild.
	tables := map[VIPKey][]uint32{}
	inputs := map[VIPKey]string{}
	for k, v := range d.VIPs {
		bs := make([]maglev.Backend, 0, len(v.Weights))
		for a, w := range v.Weights {
			bs = append(bs, maglev.Backend{ID: ids[a], Weight: w, Key: a.String()})
		}
		slices.SortFunc(bs, func(x, y maglev.Backend) int { return cmp.Compare(x.ID, y.ID) })
		var fp strings.Builder
		for _, b := range bs {
			fmt.Fprintf(&fp, "%d/%d/%s,", b.ID, b.Weight, b.Key)
		}
		inputs[k] = fp.String()
		if old, ok := r.vips[k]; ok && old.table != nil && old.inputs == inputs[k] {
			tables[k] = old.table
			continue
		}
		size := maglev.SizeFor(len(bs))
		if size == 0 {
			return nil, fmt.Errorf("VIP %s: %d backends is more than a Maglev table holds", k, len(bs))
		}
		t, err := maglev.Build(bs, size)
		if err != nil {
			return nil, fmt.Errorf("VIP %s (%s): build Maglev table: %w", v.Name, k, err)
		}
		tables[k] = t
	}

	// 1. Backends added or changed.
	for _, a := range newAddrs {
		id, want := ids[a], d.Backends[a]
		old, had := r.backends[id]
		if had && old.equal(want) {
			continue
		}
		ops = append(ops, op{
			what: fmt.Sprintf("write backend %d (%s)", id, a),
			do:   func() error { return dp.SetBackend(id, want) },
			undo: func() error {
				if had {
					return dp.SetBackend(id, old)
				}
				return dp.DeleteBackend(id)
			},
			commit: func() { r.backends[id] = want; r.ids[a] = id; r.lastID = max(r.lastID, id) },
		})
	}
	// 2. VIPs added or changed (table swapped atomically by the data plane).
	for _, k := range sortedVIPKeys(d.VIPs) {
		want := d.VIPs[k].Entry
		want.Key = k
		want.Index = vipIdx[k]
		table, in := tables[k], inputs[k]
		old, had := r.vips[k]
		if had && old.entry == want && old.table != nil && slices.Equal(old.table, table) {
			continue
		}
		ops = append(ops, op{
			what: fmt.Sprintf("write VIP %s (%s)", d.VIPs[k].Name, k),
			do:   func() error { return dp.SetVIP(want, table) },
			undo: func() error {
				if had && old.table != nil {
					return dp.SetVIP(old.entry, old.table)
				}
				return dp.DeleteVIP(k)
			},
			commit: func() { r.vips[k] = vipState{entry: want, table: table, inputs: in} },
		})
	}
	// 3. VIPs removed.
	for _, k := range sortedVIPKeys(r.vips) {
		if _, keep := d.VIPs[k]; keep {
			continue
		}
		old := r.vips[k]
		ops = append(ops, op{
			what: fmt.Sprintf("delete VIP %s", k),
			do:   func() error { return dp.DeleteVIP(k) },
			undo: func() error {
				if old.table == nil {
					return nil
				}
				return dp.SetVIP(old.entry, old.table)
			},
			commit: func() { delete(r.vips, k) },
		})
	}
	// 4. Backends removed.
	gone := make([]uint32, 0)
	for id, b := range r.backends {
		if _, keep := d.Backends[b.Address]; !keep {
			gone = append(gone, id)
		}
	}
	slices.Sort(gone)
	for _, id := range gone {
		old := r.backends[id]
		ops = append(ops, op{
			what:   fmt.Sprintf("delete backend %d (%s)", id, old.Address),
			do:     func() error { return dp.DeleteBackend(id) },
			undo:   func() error { return dp.SetBackend(id, old) },
			commit: func() { delete(r.backends, id); delete(r.ids, old.Address) },
		})
	}
	// 5. Firewall and classes, each replaced as a whole, on a balancer;
	// the local VIPs on a GPU host.
	if d.Role == RoleGPUHost {
		ops = r.planLocal(ops, d)
		return ops, nil
	}
	wantFW := fwState{defaultDeny: d.DefaultDeny, rules: d.Rules}
	if !r.fwKnown || !fwEqual(r.fw, wantFW) {
		old, known := r.fw, r.fwKnown
		ops = append(ops, op{
			what: "replace firewall rules",
			do:   func() error { return dp.SetFirewall(wantFW.defaultDeny, wantFW.rules) },
			undo: func() error {
				if !known {
					return nil
				}
				return dp.SetFirewall(old.defaultDeny, old.rules)
			},
			commit: func() { r.fw, r.fwKnown = wantFW, true },
		})
	}
	wantCl := classState{aggV4: d.AggregateV4, aggV6: d.AggregateV6, classes: d.Classes}
	if !r.classesKnown || !classesEqual(r.classes, wantCl) {
		old, known := r.classes, r.classesKnown
		ops = append(ops, op{
			what: "replace client classes",
			do:   func() error { return dp.SetClasses(wantCl.aggV4, wantCl.aggV6, wantCl.classes) },
			undo: func() error {
				if !known {
					return nil
				}
				return dp.SetClasses(old.aggV4, old.aggV6, old.classes)
			},
			commit: func() { r.classes, r.classesKnown = wantCl, true },
		})
	}
	return ops, nil
}

func (r *Reconciler) planLocal(ops []op, d *Desired) []op {
	dp := r.dp
	wantLocal := slices.Clone(d.LocalVIPs)
	slices.SortFunc(wantLocal, func(a, b netip.Addr) int { return a.Compare(b) })
	if !r.localKnown || !slices.Equal(r.local, wantLocal) {
		old, known := r.local, r.localKnown
		ops = append(ops, op{
			what: "replace local VIPs",
			do:   func() error { return dp.SetLocalVIPs(wantLocal) },
			undo: func() error {
				if !known {
					return nil
				}
				return dp.SetLocalVIPs(old)
			},
			commit: func() { r.local, r.localKnown = wantLocal, true },
		})
	}
	return ops
}

// BackendIDs returns the ID of every backend address written.
func (r *Reconciler) BackendIDs() map[netip.Addr]uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[netip.Addr]uint32, len(r.ids))
	for a, id := range r.ids {
		out[a] = id
	}
	return out
}

// VIPIndices returns the counter index of every VIP written.
func (r *Reconciler) VIPIndices() map[VIPKey]uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[VIPKey]uint32, len(r.vips))
	for k, v := range r.vips {
		out[k] = v.entry.Index
	}
	return out
}

func nextFree(last, maxID uint32, used map[uint32]bool) (uint32, bool) {
	if maxID <= firstBackendID {
		return 0, false
	}
	span := maxID - firstBackendID
	var start uint32
	if last >= firstBackendID {
		start = last - firstBackendID + 1
	}
	for i := uint32(0); i < span; i++ {
		id := firstBackendID + (start+i)%span
		if !used[id] {
			return id, true
		}
	}
	return 0, false
}

func sortedAddrs[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

func sortedVIPKeys[V any](m map[VIPKey]V) []VIPKey {
	out := make([]VIPKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if c := a.Address.Compare(b.Address); c != 0 {
			return c < 0
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Protocol < b.Protocol
	})
	return out
}

func fwEqual(a, b fwState) bool {
	if a.defaultDeny != b.defaultDeny || len(a.rules) != len(b.rules) {
		return false
	}
	for i := range a.rules {
		x, y := a.rules[i], b.rules[i]
		if x.Name != y.Name || x.Deny != y.Deny || x.Protocol != y.Protocol ||
			!slices.Equal(x.Prefixes, y.Prefixes) || !slices.Equal(x.Ports, y.Ports) {
			return false
		}
	}
	return true
}

func classesEqual(a, b classState) bool {
	if a.aggV4 != b.aggV4 || a.aggV6 != b.aggV6 || len(a.classes) != len(b.classes) {
		return false
	}
	for i := range a.classes {
		x, y := a.classes[i], b.classes[i]
		if x.Name != y.Name || x.PacketsPerSecond != y.PacketsPerSecond || x.PacketBurst != y.PacketBurst ||
			x.NewConnsPerSecond != y.NewConnsPerSecond || x.NewConnBurst != y.NewConnBurst ||
			!slices.Equal(x.Prefixes, y.Prefixes) {
			return false
		}
	}
	return true
}
