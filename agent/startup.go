package agent

import (
	"bytes"
	"fmt"

	"github.com/infergate/infergate/policy"
)

// Which policy an agent starting up applies, when it was given a policy
// file (--policy-file, in Kubernetes a ConfigMap) and also has a store of
// applied versions:
//
//   - The store wins by default: a restart runs what was last applied,
//     never less. An operator's `policy apply`, rollback or key change is
//     not undone by a file that has not changed since the agent last saw
//     it.
//   - The file wins only when its content is new: its version (a hash of
//     the compiled policy) is nowhere in the store's history. Editing the
//     ConfigMap is then the operator's newer word, and it is applied (and
//     stored) as `policy apply` would.
//   - An empty file (nothing but white space) is never applied: an empty
//     ConfigMap says nothing, it does not say "steer nothing".
//   - A file that does not compile is refused with its errors when the
//     store has nothing to run; when it has, the agent keeps running the
//     stored policy and says why the file was not applied.

// startupFile decides whether the policy file doc is applied at start
// (true) or st's current version is restored (false, with the reason to
// log).
func startupFile(doc []byte, st PolicyStore) (apply bool, why string, err error) {
	if len(bytes.TrimSpace(doc)) == 0 {
		return false, "the policy file is empty; an empty file is never applied", nil
	}
	_, haveStored, err := st.Current()
	if err != nil {
		return false, "", fmt.Errorf("read stored policy: %w", err)
	}
	pd, err := policy.Decode(bytes.NewReader(doc))
	var c *policy.Compiled
	if err == nil {
		c, err = policy.Compile(pd)
	}
	if err != nil {
		if !haveStored {
			return true, "", nil // the apply reports the errors
		}
		return false, fmt.Sprintf("the policy file does not compile (%v); the stored policy stays in force", err), nil
	}
	hist, err := st.History()
	if err != nil {
		return false, "", fmt.Errorf("read policy history: %w", err)
	}
	for _, h := range hist {
		if h.Version == c.Version {
			return false, fmt.Sprintf("the policy file's version %s was applied before; the stored policy (applied since) stays in force", c.Version), nil
		}
	}
	return true, "", nil
}
