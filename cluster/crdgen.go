package cluster

import (
	"encoding/json"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/infergate/infergate/policy"
)

// The CRDs in deploy/crds are generated here from policy/schema.json (go
// test ./cluster -run TestCRDsUpToDate -update), so a Policy object's spec
// is checked against the schema a policy file is, and the two cannot drift:
// the test fails when the committed files differ from what the policy's
// schema gives.
//
// JSON Schema becomes a Kubernetes structural schema: $refs are inlined,
// const becomes a one-value enum, and three keywords are dropped:
// additionalProperties: false (the API server prunes unknown fields, and
// kubectl's strict field validation refuses them), uniqueItems (refused by
// the API server; lists of strings become x-kubernetes-list-type: set,
// which refuses duplicates), and default (the API server would write
// defaults into the stored object; the agent's Compile applies the same
// defaults, so the applied version does not depend on it).

// CRDFiles returns the generated CRDs by file name under deploy/crds.
func CRDFiles() (map[string][]byte, error) {
	raw, err := policy.Schema()
	if err != nil {
		return nil, err
	}
	var root map[string]any
	if err := json.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("policy schema: %w", err)
	}
	defs, _ := root["$defs"].(map[string]any)
	doc, err := structural(resolve(root, defs, 0))
	if err != nil {
		return nil, err
	}
	props, _ := doc["properties"].(map[string]any)
	spec, ok := props["spec"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("policy schema has no spec")
	}
	meta, _ := props["metadata"].(map[string]any)
	nameRule := map[string]any{"type": "string"}
	if mp, ok := meta["properties"].(map[string]any); ok {
		if n, ok := mp["name"].(map[string]any); ok {
			for _, k := range []string{"pattern", "maxLength"} {
				if v, ok := n[k]; ok {
					nameRule[k] = v
				}
			}
		}
	}
	policySchema := map[string]any{
		"type":        "object",
		"description": "Policy is infergate's policy document as a cluster object: its spec is a policy file's spec. status.nodes holds each node's applied version and problems.",
		"required":    []any{"spec"},
		"properties": map[string]any{
			"apiVersion": map[string]any{"type": "string"},
			"kind":       map[string]any{"type": "string"},
			// Only name may be narrowed here: the policy's name rule.
			"metadata": map[string]any{"type": "object", "properties": map[string]any{"name": nameRule}},
			"spec":     spec,
			"status":   policyStatusSchema(),
		},
	}
	vipPoolSchema := map[string]any{
		"type":        "object",
		"description": "VIPPool holds the addresses LoadBalancer Services of class infergate.dev/xdp get their VIPs from.",
		"required":    []any{"spec"},
		"properties": map[string]any{
			"apiVersion": map[string]any{"type": "string"},
			"kind":       map[string]any{"type": "string"},
			"metadata":   map[string]any{"type": "object"},
			"spec": map[string]any{
				"type":     "object",
				"required": []any{"cidrs"},
				"properties": map[string]any{
					"cidrs": map[string]any{
						"type": "array", "minItems": 1, "maxItems": 64, "x-kubernetes-list-type": "set",
						"description": "Prefixes (198.18.100.0/24, 2001:db8:100::/120) or single addresses. IPv4 network and broadcast addresses are never given out.",
						"items": map[string]any{"type": "string", "maxLength": 64,
							"x-kubernetes-validations": []any{map[string]any{
								"rule":    "isCIDR(self) || isIP(self)",
								"message": "must be an IP prefix or address",
							}}},
					},
				},
			},
		},
	}
	out := map[string][]byte{}
	for _, c := range []struct {
		file, kind, plural, singular string
		schema                       map[string]any
		status                       bool
		columns                      []any
	}{
		{"policy.yaml", policy.Kind, "policies", "policy", policySchema, true, nil},
		{"vippool.yaml", "VIPPool", "vippools", "vippool", vipPoolSchema, false, []any{
			map[string]any{"name": "CIDRs", "type": "string", "jsonPath": ".spec.cidrs"},
		}},
	} {
		version := map[string]any{
			"name": "v1alpha1", "served": true, "storage": true,
			"schema": map[string]any{"openAPIV3Schema": c.schema},
		}
		if c.status {
			version["subresources"] = map[string]any{"status": map[string]any{}}
		}
		if c.columns != nil {
			version["additionalPrinterColumns"] = c.columns
		}
		crd := map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1",
			"kind":       "CustomResourceDefinition",
			"metadata":   map[string]any{"name": c.plural + "." + PolicyGVR.Group},
			"spec": map[string]any{
				"group":    PolicyGVR.Group,
				"scope":    "Cluster",
				"names":    map[string]any{"kind": c.kind, "plural": c.plural, "singular": c.singular, "listKind": c.kind + "List"},
				"versions": []any{version},
			},
		}
		b, err := yaml.Marshal(crd)
		if err != nil {
			return nil, err
		}
		out[c.file] = append([]byte("# Generated from policy/schema.json by go test ./cluster -run TestCRDsUpToDate -update. Do not edit.\n"), b...)
	}
	return out, nil
}

func policyStatusSchema() map[string]any {
	str := map[string]any{"type": "string"}
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"nodes": map[string]any{
				"type":                       "array",
				"description":                "One entry per node, written by that node alone (server-side apply, field manager infergate-agent/<node>).",
				"x-kubernetes-list-type":     "map",
				"x-kubernetes-list-map-keys": []any{"node"},
				"items": map[string]any{
					"type":     "object",
					"required": []any{"node"},
					"properties": map[string]any{
						"node":               str,
						"appliedVersion":     map[string]any{"type": "string", "description": "The version in force on the node (a refused document leaves the previous one)."},
						"observedGeneration": map[string]any{"type": "integer", "format": "int64"},
						"accepted":           map[string]any{"type": "boolean", "description": "Whether the node took the last document composed from this generation and the cluster's objects."},
						"errors":             map[string]any{"type": "array", "maxItems": maxStatusErrors, "items": str},
						"updatedAt":          map[string]any{"type": "string", "format": "date-time"},
					},
				},
			},
		},
	}
}

// resolve inlines $refs into #/$defs.
func resolve(n any, defs map[string]any, depth int) any {
	if depth > 64 {
		panic("policy schema: $ref nesting too deep (a recursive type?)")
	}
	switch v := n.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, "#/$defs/")
			return resolve(defs[name], defs, depth+1)
		}
		out := map[string]any{}
		for k, x := range v {
			if k == "$defs" {
				continue
			}
			out[k] = resolve(x, defs, depth+1)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = resolve(x, defs, depth+1)
		}
		return out
	}
	return n
}

// structural rewrites a resolved JSON Schema node into what a CRD takes.
func structural(n any) (map[string]any, error) {
	m, ok := n.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("schema node %T, want an object", n)
	}
	out := map[string]any{}
	for k, v := range m {
		switch k {
		case "$schema", "$id", "title", "default":
		case "const":
			out["enum"] = []any{v}
		case "uniqueItems":
			if items, _ := m["items"].(map[string]any); items != nil && items["type"] == "string" {
				out["x-kubernetes-list-type"] = "set"
			}
		case "additionalProperties":
			if sub, ok := v.(map[string]any); ok {
				s, err := structural(sub)
				if err != nil {
					return nil, err
				}
				out[k] = s
			}
		case "properties":
			props := map[string]any{}
			for name, p := range v.(map[string]any) {
				s, err := structural(p)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
				props[name] = s
			}
			out[k] = props
		case "items":
			s, err := structural(v)
			if err != nil {
				return nil, err
			}
			out[k] = s
		default:
			out[k] = v
		}
	}
	return out, nil
}
