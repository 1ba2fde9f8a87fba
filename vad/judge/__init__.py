"""Judging machine-made records: the categorizer, the LLM judge, and how both compare with the reviewers."""
