package inspect

import (
	"regexp"
	"regexp/syntax"
)

// minGateLen is the shortest literal worth gating an expression on.
const minGateLen = 3

// customRE is a custom expression. When every match must contain an ASCII
// literal (gate), the keyword automaton looks for the literal during the
// single pass and the expression runs only on texts that contain it; most
// texts then cost nothing beyond the shared pass.
type customRE struct {
	re   *regexp.Regexp
	rule int
	gate string // lower-case ASCII, or "" to always run
}

func newCustom(pattern string, rule int) (customRE, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return customRE{}, err
	}
	c := customRE{re: re, rule: rule}
	if tree, err := syntax.Parse(pattern, syntax.Perl); err == nil {
		c.gate = requiredLiteral(tree.Simplify())
	}
	return c, nil
}

// requiredLiteral returns the longest ASCII literal that every match of re
// contains, lower-cased (the automaton folds ASCII case, so a
// case-sensitive literal gates a superset of its matches), or "".
func requiredLiteral(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		lit := string(re.Rune)
		if !isASCII(lit) || len(lit) < minGateLen {
			return ""
		}
		b := []byte(lit)
		for i, c := range b {
			b[i] = lower[c]
		}
		return string(b)
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiteral(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiteral(re.Sub[0])
		}
	case syntax.OpConcat:
		best := ""
		for _, sub := range re.Sub {
			if l := requiredLiteral(sub); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}
