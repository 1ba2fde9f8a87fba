"""The spine every stage shares: records, the ledger, JSON-lines I/O, paths, the typed params, stage declarations and the pipelines, the taxonomy, text helpers."""
