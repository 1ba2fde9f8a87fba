"""The three raw sources: hand-written instructions (ingest_manual), CValues seeds (seeds), PKU-SafeRLHF pairs (select_pairs), with their provenance and fetching."""
