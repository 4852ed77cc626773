package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/infergate/infergate/policy"
)

// policyName joins parts with dots into a name the policy accepts
// (lower-case letters, digits, '.', '_' and '-', at most policy.MaxNameLen):
// other characters become '-', and a name that would be longer keeps its
// head and ends in a digest of the whole, so two long names stay apart.
func policyName(parts ...string) string {
	full := strings.Join(parts, ".")
	var b strings.Builder
	for _, r := range strings.ToLower(full) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "._-")
	if s == "" {
		s = "x"
	}
	if len(s) <= policy.MaxNameLen {
		return s
	}
	sum := sha256.Sum256([]byte(full))
	tag := hex.EncodeToString(sum[:5])
	head := strings.TrimRight(s[:policy.MaxNameLen-len(tag)-1], "._-")
	return head + "-" + tag
}

// ServicePoolName is the policy pool (and VIP) name of one port of a
// LoadBalancer Service: <name>.<namespace>.svc, then .<port name> when the
// port has one. Namespaces and Service names hold no dots, so names of
// different Services never meet.
func ServicePoolName(namespace, name, port string) string {
	if port == "" {
		return policyName(name, namespace, "svc")
	}
	return policyName(name, namespace, "svc", port)
}

// InferencePoolName is the policy pool of an InferencePool:
// <name>.<namespace>.inferencepool. A Policy's model routes name it.
func InferencePoolName(namespace, name string) string {
	return policyName(name, namespace, "inferencepool")
}
