// Package deploy holds the Kubernetes manifests; its tests render the
// kustomization, check what an operator would check by reading it, send
// every object to a real API server's server-side dry-run, check the RBAC
// rules against the RBAC authorizer, and build and start the image.
//
// The kustomization is rendered by render below rather than by
// sigs.k8s.io/kustomize/api: the manifests use two of its features
// (resources: files, and images: with a digest), and kustomize's API module
// would bring its own YAML stack and dozens of modules for them. render
// decodes kustomization.yaml strictly, so a feature it does not implement
// (patches, generators, a directory resource) fails the tests instead of
// being silently ignored.
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

type kustomization struct {
	APIVersion string      `yaml:"apiVersion"`
	Kind       string      `yaml:"kind"`
	Resources  []string    `yaml:"resources"`
	Images     []imageRule `yaml:"images"`
}

type imageRule struct {
	Name    string `yaml:"name"`
	NewName string `yaml:"newName"`
	NewTag  string `yaml:"newTag"`
	Digest  string `yaml:"digest"`
}

// object is one rendered manifest, as its YAML decodes.
type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }

func (o object) name() string {
	m, _ := o["metadata"].(map[string]any)
	s, _ := m["name"].(string)
	return s
}

func (o object) namespace() string {
	m, _ := o["metadata"].(map[string]any)
	s, _ := m["namespace"].(string)
	return s
}

// render renders the kustomization in dir as kubectl apply -k would for
// the features it uses: every resource file's documents in order, with the
// images: rules applied to every container and init container image.
func render(dir string) ([]object, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k kustomization
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&k); err != nil {
		return nil, fmt.Errorf("kustomization.yaml (this renderer knows resources and images only): %w", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return nil, fmt.Errorf("kustomization.yaml: apiVersion/kind %s/%s", k.APIVersion, k.Kind)
	}
	var out []object
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		if st, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("resource %s: %w", r, err)
		} else if st.IsDir() {
			return nil, fmt.Errorf("resource %s: a directory (this renderer takes files)", r)
		}
		docs, err := decodeAll(p)
		if err != nil {
			return nil, fmt.Errorf("resource %s: %w", r, err)
		}
		out = append(out, docs...)
	}
	for _, rule := range k.Images {
		if rule.Name == "" {
			return nil, errors.New("images: an entry without a name")
		}
		for _, o := range out {
			setImages(o, rule)
		}
	}
	return out, nil
}

func decodeAll(path string) ([]object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var out []object
	for {
		// Into a plain map: yaml.v3 would give nested mappings the named
		// type of the outer one.
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(o) == 0 {
			continue // an empty document between two ---
		}
		out = append(out, object(o))
	}
}

// setImages applies rule to every containers/initContainers entry in v.
func setImages(v any, rule imageRule) {
	switch x := v.(type) {
	case object:
		setImages(map[string]any(x), rule)
	case map[string]any:
		for k, c := range x {
			if k == "containers" || k == "initContainers" {
				if list, ok := c.([]any); ok {
					for _, e := range list {
						if ctr, ok := e.(map[string]any); ok {
							if img, ok := ctr["image"].(string); ok && imageName(img) == rule.Name {
								ctr["image"] = rewrite(img, rule)
							}
						}
					}
				}
			}
			setImages(c, rule)
		}
	case []any:
		for _, e := range x {
			setImages(e, rule)
		}
	}
}

// imageName is ref without its tag or digest.
func imageName(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

func rewrite(ref string, rule imageRule) string {
	name := imageName(ref)
	if rule.NewName != "" {
		name = rule.NewName
	}
	switch {
	case rule.Digest != "":
		return name + "@" + rule.Digest
	case rule.NewTag != "":
		return name + ":" + rule.NewTag
	}
	return name + strings.TrimPrefix(ref, imageName(ref))
}
