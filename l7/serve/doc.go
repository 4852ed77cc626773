// Package serve turns a compiled policy into a running L7 gateway, and a
// later policy into the same gateway reconfigured: the one composition root
// that both the node agent and "infergate gateway" use.
//
// A Server owns everything a policy's gateway section names: the stage
// chain (l7/gateway), the backend picker (l7/pick, fed by a Loads),
// the limiter (memory or Redis), the audit log and the listener. Apply is
// all or nothing for every field:
//
//   - Everything a new policy needs is built first, beside what serves now:
//     a listener on a new address, a limiter for a new store or failOpen
//     setting, and, when the limiter, the audit path or whether any pool
//     is steered by load changed, a whole new gateway.Gateway (its audit
//     log opened, its stages built). Otherwise the running gateway's own
//     atomic Apply swaps stages, routes, keys and inspection.
//   - If any of it fails, what was built is closed and the policy in force
//     keeps serving; the error says which field could not be applied.
//   - Only then is the new state switched in, and what it replaced (old
//     listener, gateway, limiter) finishes its requests in flight and is
//     closed after.
//
// A rebuilt gateway starts its Prometheus series and per-backend counters
// from zero (Prometheus treats it as a counter reset); the limiter's state
// survives a rebuild whenever the limit store is unchanged, because the
// Server, not the gateway, owns the limiter.
package serve
