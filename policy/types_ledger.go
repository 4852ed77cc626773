package policy

// Ledger is the usage and billing ledger (see l7/ledger): every finished
// request is written to a local spool and, when Postgres names a database,
// shipped there. Off unless Spool is set.
type Ledger struct {
	// Spool is the bbolt file in the node's state directory (absolute).
	Spool string `yaml:"spool,omitempty" json:"spool,omitempty"`
	// MaxEntries bounds the spool (default 1,000,000); at it, new entries
	// are dropped and counted (infergate_ledger_spool_dropped_total).
	MaxEntries int64 `yaml:"maxEntries,omitempty" json:"maxEntries,omitempty"`
	// Postgres is the fleet-wide ledger the spool is shipped to.
	Postgres LedgerPostgres `yaml:"postgres,omitempty" json:"postgres,omitzero"`
}

// LedgerPostgres names the database's connection string without putting it
// (and its password) in the policy: a file (a mounted secret) holding a
// libpq URL or keyword string. TLS is set in it (sslmode=verify-full,
// sslrootcert=...).
type LedgerPostgres struct {
	DSNFile string `yaml:"dsnFile,omitempty" json:"dsnFile,omitempty"`
}

// maxLedgerEntries bounds MaxEntries (about 300 GB of entries).
const maxLedgerEntries = 1_000_000_000
