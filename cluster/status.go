package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/infergate/infergate/policy"
)

// Each node reports on the Policy it applies in status.nodes, a list keyed
// by node name (x-kubernetes-list-type: map). A node writes only its own
// entry, by server-side apply with a field manager of its own
// (FieldManager), so the API server merges the nodes' entries and no
// node's write ever conflicts with another's or overwrites it, however
// many write at once: there is no read-modify-write of a shared object.

// FieldManager is the server-side apply manager of a node's status entry.
func FieldManager(node string) string { return "infergate-agent/" + node }

// Bounds of what one node writes to a Policy's status.
const (
	maxStatusErrors   = 32
	maxStatusErrorLen = 512
)

type statusEntry struct {
	version    string
	generation int64
	errors     []string
}

type statusWriter struct {
	dyn     dynamic.Interface
	node    string
	log     *slog.Logger
	last    map[string]statusEntry // by Policy name
	applied string
}

func newStatusWriter(dyn dynamic.Interface, node string, log *slog.Logger) *statusWriter {
	return &statusWriter{dyn: dyn, node: node, log: log, last: map[string]statusEntry{}}
}

// lastVersion is the version this node last reported as applied.
func (w *statusWriter) lastVersion() string { return w.applied }

// report writes this node's entry when it changed: the version in force
// after an accepted apply, or the problems of a refused one (the version
// then stays the one still in force).
func (w *statusWriter) report(ctx context.Context, pobj *unstructured.Unstructured, version string, applyErr error) {
	e := statusEntry{generation: pobj.GetGeneration(), version: version}
	if applyErr != nil {
		e.version = w.applied
		e.errors = statusErrors(applyErr)
	} else {
		w.applied = version
	}
	if prev, ok := w.last[pobj.GetName()]; ok && prev.version == e.version && prev.generation == e.generation && slices.Equal(prev.errors, e.errors) {
		return
	}
	errs := make([]any, len(e.errors))
	for i, s := range e.errors {
		errs[i] = s
	}
	entry := map[string]any{
		"node":               w.node,
		"observedGeneration": e.generation,
		"accepted":           applyErr == nil,
		"errors":             errs,
		"updatedAt":          time.Now().UTC().Format(time.RFC3339),
	}
	if e.version != "" {
		entry["appliedVersion"] = e.version
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": PolicyGVR.GroupVersion().String(),
		"kind":       policy.Kind,
		"metadata":   map[string]any{"name": pobj.GetName()},
		"status":     map[string]any{"nodes": []any{entry}},
	}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := w.dyn.Resource(PolicyGVR).Apply(ctx, pobj.GetName(), u, metav1.ApplyOptions{FieldManager: FieldManager(w.node), Force: true}, "status")
	if err != nil {
		// The next change or resync writes it again.
		w.log.Warn("writing this node's entry in the Policy's status failed", "policy", pobj.GetName(), "err", err)
		delete(w.last, pobj.GetName())
		return
	}
	w.last[pobj.GetName()] = e
}

// statusErrors lists an apply's problems, one line each, bounded.
func statusErrors(err error) []string {
	var out []string
	var ve *policy.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			out = append(out, p.String())
		}
	} else {
		out = []string{err.Error()}
	}
	if len(out) > maxStatusErrors {
		n := len(out) - maxStatusErrors + 1
		out = append(out[:maxStatusErrors-1], fmt.Sprintf("... and %d more", n))
	}
	for i, s := range out {
		if len(s) > maxStatusErrorLen {
			out[i] = s[:maxStatusErrorLen-3] + "..."
		}
	}
	return out
}

var indexedPath = regexp.MustCompile(`^spec\.(pools|dataplane\.vips)\[(\d+)\]`)

// annotatePaths names the pool or VIP behind a problem's index: the
// composed document's indices are not those of the Policy object, whose
// pools the cluster's come after.
func annotatePaths(err error, doc *policy.Document) error {
	var ve *policy.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	out := &policy.ValidationError{Problems: slices.Clone(ve.Problems)}
	for i, p := range out.Problems {
		m := indexedPath.FindStringSubmatch(p.Path)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		name := ""
		switch {
		case m[1] == "pools" && n < len(doc.Spec.Pools):
			name = doc.Spec.Pools[n].Name
		case m[1] != "pools" && n < len(doc.Spec.Dataplane.VIPs):
			name = doc.Spec.Dataplane.VIPs[n].Name
		}
		if name != "" {
			out.Problems[i].Message = fmt.Sprintf("(%s) %s", name, p.Message)
		}
		out.Problems[i].Line = 0 // lines of the composed document mean nothing to the reader
	}
	return out
}
