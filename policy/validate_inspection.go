package policy

import (
	"regexp"
	"strings"
)

// inspection checks the prompt inspector's rules: each detector with the
// inputs it takes, and bounded.
func (v *validator) inspection(p string, insp *Inspection) {
	if insp.MaxMessageBytes < 0 {
		v.add(p+".maxMessageBytes", "%d must not be negative", insp.MaxMessageBytes)
	}
	seen := uniq{}
	for i, r := range insp.Rules {
		rp := idx(p+".rules", i)
		v.name(rp+".name", r.Name)
		v.unique(seen, rp+".name", r.Name, "rule")
		v.enum(rp+".detector", r.Detector, Detectors, false)
		v.enum(rp+".action", r.Action, inspectActions, false)
		switch r.Detector {
		case "regex":
			switch {
			case r.Pattern == "":
				v.add(rp+".pattern", "is required for the regex detector")
			case len(r.Pattern) > MaxPatternLen:
				v.add(rp+".pattern", "is longer than %d bytes", MaxPatternLen)
			default:
				if _, err := regexp.Compile(r.Pattern); err != nil {
					v.add(rp+".pattern", "%q is not a valid regular expression: %v", truncate(r.Pattern, 80), strings.TrimPrefix(err.Error(), "error parsing regexp: "))
				}
			}
		case "deny-list":
			if len(r.Words) == 0 {
				v.add(rp+".words", "is required for the deny-list detector")
			}
		}
		if r.Pattern != "" && r.Detector != "regex" {
			v.add(rp+".pattern", "only the regex detector takes a pattern")
		}
		if len(r.Words) > 0 && r.Detector != "deny-list" {
			v.add(rp+".words", "only the deny-list detector takes words")
		}
		if len(r.Words) > MaxDenyWords {
			v.add(rp+".words", "has %d words; at most %d", len(r.Words), MaxDenyWords)
		}
		for j, w := range r.Words {
			if strings.TrimSpace(w) == "" {
				v.add(idx(rp+".words", j), "is empty")
			}
		}
	}
}
