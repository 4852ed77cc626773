// Package monitoring holds infergate's Grafana dashboard and Prometheus
// alerting rules, and reads their queries back out so the tests can run
// every one against a Prometheus scraping real agents: a panel or alert
// that names a metric nobody exports fails the suite instead of rotting.
package monitoring

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed grafana-dashboard.json
var dashboardJSON []byte

//go:embed alerts.yaml
var alertsYAML []byte

// Query is one PromQL expression and where it comes from.
type Query struct {
	// Source is "panel: <title>" or "alert: <name>".
	Source string
	Expr   string
	// Alert expressions end in a threshold: they return series only while
	// firing, so a test checks their metric names, not their results.
	Alert bool
}

// Queries returns every dashboard panel target and every alerting rule.
func Queries() ([]Query, error) {
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	var qs []Query
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			qs = append(qs, Query{Source: "panel: " + p.Title, Expr: t.Expr})
		}
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string
				Expr  string
			}
		}
	}
	if err := yaml.Unmarshal(alertsYAML, &rules); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			qs = append(qs, Query{Source: "alert: " + r.Alert, Expr: strings.TrimSpace(r.Expr), Alert: true})
		}
	}
	return qs, nil
}

// Concrete replaces the dashboard's Grafana variables with values
// Prometheus takes: every tenant and model, and a rate window of window.
func Concrete(expr, window string) string {
	return strings.NewReplacer("$__rate_interval", window, "$tenant", ".*", "$model", ".*").Replace(expr)
}

var (
	reString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	reMatchers = regexp.MustCompile(`\{[^}]*\}`)
	reRange    = regexp.MustCompile(`\[[^\]]*\]`)
	reGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	reIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	// keywords are PromQL words that are not metric names.
	keywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"Inf": true, "NaN": true}
)

// MetricNames lists the metric names expr selects: identifiers that are not
// functions, keywords, label names or parts of strings and ranges. A
// histogram's _bucket, _sum and _count series keep their suffix.
func MetricNames(expr string) []string {
	s := reString.ReplaceAllString(expr, `""`)
	s = reMatchers.ReplaceAllString(s, " ")
	s = reRange.ReplaceAllString(s, " ")
	s = reGrouping.ReplaceAllString(s, " ")
	seen := map[string]bool{}
	for _, m := range reIdent.FindAllStringSubmatch(s, -1) {
		name := m[0]
		if m[1] != "" { // followed by "(": a function
			continue
		}
		if keywords[name] || seen[name] {
			continue
		}
		seen[name] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
