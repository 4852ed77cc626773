package policy

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// SchemaID names the generated JSON Schema.
const SchemaID = "https://infergate.dev/schemas/policy-v1alpha1.json"

// fieldRules adds to the schema what Go types cannot say: enumerations,
// ranges and formats, keyed by "Type.Field". Validate is the authority; the
// schema helps editors catch the same mistakes early.
var fieldRules = map[string]map[string]any{
	"Document.APIVersion":        {"const": APIVersion},
	"Document.Kind":              {"const": Kind},
	"Metadata.Name":              {"pattern": nameRE.String(), "maxLength": MaxNameLen},
	"Dataplane.XDPMode":          {"enum": xdpModes, "default": DefaultXDPMode},
	"Dataplane.Interfaces":       {"uniqueItems": true},
	"Firewall.DefaultAction":     {"enum": fwActions, "default": DefaultFirewallAction},
	"FirewallRule.Action":        {"enum": fwActions},
	"FirewallRule.Protocol":      {"enum": ruleProtocols, "default": DefaultRuleProtocol},
	"FirewallRule.Ports":         {"items": map[string]any{"type": "integer", "minimum": 1, "maximum": 65535}},
	"RateLimits.AggregateV4":     {"minimum": 0, "maximum": 32, "default": DefaultAggregateV4},
	"RateLimits.AggregateV6":     {"minimum": 0, "maximum": 128, "default": DefaultAggregateV6},
	"VIP.Port":                   {"minimum": 1, "maximum": 65535},
	"VIP.Protocol":               {"enum": vipProtocols, "default": DefaultVIPProtocol},
	"VIP.Forwarding":             {"enum": forwardings, "default": DefaultForwarding},
	"Pool.Backends":              {"minItems": 1, "maxItems": MaxBackendsPerPool},
	"Backend.Port":               {"minimum": 0, "maximum": 65535},
	"Backend.Weight":             {"maximum": MaxWeight, "default": DefaultBackendWeight},
	"Backend.State":              {"enum": backendStates, "default": DefaultBackendState},
	"HealthCheck.Type":           {"enum": healthTypes},
	"HealthCheck.Port":           {"minimum": 0, "maximum": 65535},
	"HealthCheck.Interval":       {"default": Duration(DefaultHealthInterval).String()},
	"HealthCheck.Timeout":        {"default": Duration(DefaultHealthTimeout).String()},
	"HealthCheck.Rise":           {"minimum": 0, "maximum": MaxHealthRiseFall, "default": DefaultHealthRise},
	"HealthCheck.Fall":           {"minimum": 0, "maximum": MaxHealthRiseFall, "default": DefaultHealthFall},
	"Gateway.Listen":             {"default": DefaultListen},
	"Gateway.MaxBodyBytes":       {"minimum": 0, "maximum": MaxMaxBodyBytes, "default": DefaultMaxBodyBytes},
	"Inspection.MaxMessageBytes": {"minimum": 0, "default": DefaultMaxMessageBytes},
	"JWTIssuer.TenantClaim":      {"default": DefaultTenantClaim},
	"Timeouts.Connect":           {"default": Duration(DefaultConnectTimeout).String()},
	"Timeouts.TimeToFirstToken":  {"default": Duration(DefaultTTFTTimeout).String()},
	"Timeouts.Total":             {"default": Duration(DefaultTotalTimeout).String()},
	"APIKey.Hash":                {"pattern": "^sha256:[0-9a-f]{64}$"},
	"Model.Encoding":             {"enum": encodings},
	"Model.Routes":               {"minItems": 1},
	"Model.Retries":              {"minimum": 0, "maximum": MaxRetries, "default": DefaultRetries},
	"Route.Weight":               {"maximum": MaxWeight, "default": DefaultRouteWeight},
	"InspectionRule.Detector":    {"enum": Detectors},
	"InspectionRule.Action":      {"enum": inspectActions},
	"GatewayTLS.ClientAuth":      {"enum": clientAuthModes, "default": ClientAuthNone},
}

//go:embed schema.json
var schemaJSON []byte

// Schema returns the JSON Schema (draft 2020-12) of policy documents, for
// editors. It is generated from the Go types and their doc comments by
// generateSchema (go test ./policy -run TestSchemaUpToDate -update) and
// embedded, so the binary needs no sources.
func Schema() ([]byte, error) {
	return append([]byte(nil), schemaJSON...), nil
}

// generateSchema builds the schema from the Go types: field names, types,
// required fields (those without omitempty), no unknown fields, fieldRules,
// and descriptions keyed "Type" or "Type.Field".
func generateSchema(desc map[string]string) ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}, desc: desc}
	root := g.typeSchema(reflect.TypeFor[Document]())
	s := map[string]any{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"$id":     SchemaID,
		"title":   "infergate Policy",
		"$ref":    root["$ref"],
		"$defs":   g.defs,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encoding schema: %w", err)
	}
	return buf.Bytes(), nil
}

type schemaGen struct {
	defs map[string]any
	desc map[string]string
}

func (g *schemaGen) typeSchema(t reflect.Type) map[string]any {
	if t == reflect.TypeFor[Duration]() {
		return map[string]any{"type": "string", "pattern": `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`,
			"description": "a duration such as 500ms, 2s, 1m30s"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.typeSchema(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint16, reflect.Uint8:
		if t.Bits() >= 53 {
			// Past 2^53 JSON numbers lose precision in editors' JavaScript.
			return map[string]any{"type": "integer", "minimum": 0}
		}
		return map[string]any{"type": "integer", "minimum": 0, "maximum": uint64(1)<<t.Bits() - 1}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number", "minimum": 0}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.typeSchema(t.Elem()), "maxItems": MaxListItems}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.typeSchema(t.Elem())}
	case reflect.Struct:
		name := t.Name()
		if _, done := g.defs[name]; !done {
			g.defs[name] = nil // mark before recursing
			props := map[string]any{}
			var required []string
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				if !f.IsExported() {
					continue
				}
				fname, omitEmpty := yamlName(f)
				if fname == "-" {
					continue
				}
				fs := g.typeSchema(f.Type)
				if rules, ok := fieldRules[name+"."+f.Name]; ok {
					merged := map[string]any{}
					for k, v := range fs {
						merged[k] = v
					}
					for k, v := range rules {
						merged[k] = v
					}
					fs = merged
				}
				if d := g.desc[name+"."+f.Name]; d != "" {
					withDesc := map[string]any{"description": d}
					for k, v := range fs {
						if k != "description" {
							withDesc[k] = v
						}
					}
					fs = withDesc
				}
				props[fname] = fs
				if !omitEmpty {
					required = append(required, fname)
				}
			}
			def := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
			if d := g.desc[name]; d != "" {
				def["description"] = d
			}
			if len(required) > 0 {
				def["required"] = required
			}
			g.defs[name] = def
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	}
	return map[string]any{}
}

// schemaFieldKeys lists fieldRules keys that name no field (a typo there
// would silently drop a rule); used by tests.
func schemaFieldKeys() []string {
	types := map[string]reflect.Type{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || types[t.Name()] != nil {
			return
		}
		types[t.Name()] = t
		for i := 0; i < t.NumField(); i++ {
			walk(t.Field(i).Type)
		}
	}
	walk(reflect.TypeFor[Document]())
	var bad []string
	for k := range fieldRules {
		typ, field, _ := strings.Cut(k, ".")
		t, ok := types[typ]
		if !ok {
			bad = append(bad, k)
			continue
		}
		if _, ok := t.FieldByName(field); !ok {
			bad = append(bad, k)
		}
	}
	return bad
}
