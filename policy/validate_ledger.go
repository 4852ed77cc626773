package policy

import "path/filepath"

// ledger checks the usage ledger's spool and database.
func (v *validator) ledger(p string, l Ledger) {
	if l.Spool != "" && !filepath.IsAbs(l.Spool) {
		v.add(p+".spool", "%q must be an absolute path", truncate(l.Spool, 80))
	}
	if l.MaxEntries < 0 || l.MaxEntries > maxLedgerEntries {
		v.add(p+".maxEntries", "%d is outside 0..%d", l.MaxEntries, int64(maxLedgerEntries))
	}
	pg := l.Postgres
	if pg != (LedgerPostgres{}) && l.Spool == "" {
		v.add(p+".spool", "is required when postgres is set (entries are shipped from the spool)")
	}
	if l.Spool == "" && l.MaxEntries != 0 {
		v.add(p+".spool", "is required when maxEntries is set")
	}
	if pg.DSNFile != "" && !filepath.IsAbs(pg.DSNFile) {
		v.add(p+".postgres.dsnFile", "%q must be an absolute path", truncate(pg.DSNFile, 80))
	}
}
