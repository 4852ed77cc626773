package policy

import "testing"

func TestLedgerProblems(t *testing.T) {
	cases := []struct{ name, doc, path, msg string }{
		{"spool relative", minimal + "\n  gateway:\n    ledger:\n      spool: ledger.db #<", "spec.gateway.ledger.spool", `"ledger.db" must be an absolute path`},
		{"max entries", minimal + "\n  gateway:\n    ledger:\n      spool: /l.db\n      maxEntries: -1 #<", "spec.gateway.ledger.maxEntries", "-1 is outside"},
		{"postgres without spool", minimal + "\n  gateway:\n    ledger: #<\n      postgres:\n        dsnFile: /dsn", "spec.gateway.ledger.spool", "is required when postgres is set"},
		{"max without spool", minimal + "\n  gateway:\n    ledger: #<\n      maxEntries: 5", "spec.gateway.ledger.spool", "is required when maxEntries is set"},
		{"dsn file relative", minimal + "\n  gateway:\n    ledger:\n      spool: /l.db\n      postgres:\n        dsnFile: dsn #<", "spec.gateway.ledger.postgres.dsnFile", `"dsn" must be an absolute path`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, tc.doc, tc.path, tc.msg) })
	}
}
