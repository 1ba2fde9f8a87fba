"""What people see: human review (review), the exported dataset with its card and report (export), and lineage look-ups (trace)."""
