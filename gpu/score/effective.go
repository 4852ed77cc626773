package score

import "math"

// Effective is the one definition of how a backend's static weight (the
// operator's share in the policy) and its load weight (Weighter's, from
// its GPU load report) combine into the weight both the L4 Maglev tables
// and the L7 picker use:
//
//	effective = static × load / DefaultBaseWeight
//
// A host reporting the neutral load weight (DefaultBaseWeight, also what
// a host that has not reported yet gets) keeps exactly its static weight,
// so a pool that runs without load reports and one whose hosts are all
// idle split traffic the same way; the load then scales that share up or
// down. Static 0 (the operator took the backend out) and load 0 (its
// report drains it) are 0 whatever the other says. Two positive weights
// never combine to 0: a busy host keeps the trickle its floor promises.
func Effective(static, load uint32) uint32 {
	if static == 0 || load == 0 {
		return 0
	}
	w := uint64(static) * uint64(load) / DefaultBaseWeight
	return uint32(min(max(w, 1), math.MaxUint32))
}

// EffectiveFloat is Effective for a load weight the caller already holds as
// a float (the L7 picker's per-request arithmetic), with the same result
// for integral loads.
func EffectiveFloat(static uint32, load float64) float64 {
	if static == 0 || !(load > 0) {
		return 0
	}
	return max(float64(static)*load/DefaultBaseWeight, 1)
}
