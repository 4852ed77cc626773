package agent

import (
	"errors"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// annotateLines gives the node's problems the line numbers of the paths
// they name in doc, the way the policy's own problems carry them.
func annotateLines(err error, doc []byte) error {
	var ie *InvalidError
	if !errors.As(err, &ie) {
		return err
	}
	var root yaml.Node
	if yaml.Unmarshal(doc, &root) != nil {
		return err
	}
	for i, p := range ie.Problems {
		if p.Line == 0 {
			ie.Problems[i].Line = lineOfPath(&root, p.Path)
		}
	}
	return err
}

// lineOfPath finds "spec.pools[0].backends[1]" in a YAML tree; it returns
// the line of the deepest node it reached, or 0.
func lineOfPath(n *yaml.Node, path string) int {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(path, ".") {
		if part == "" {
			continue
		}
		key, rest, _ := strings.Cut(part, "[")
		if n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
				line = n.Content[i].Line
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
		for rest != "" {
			idxStr, after, ok := strings.Cut(rest, "]")
			idx, err := strconv.Atoi(idxStr)
			if !ok || err != nil || n.Kind != yaml.SequenceNode || idx < 0 || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return line
}
