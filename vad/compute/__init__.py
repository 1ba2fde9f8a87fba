"""Models and where they run: loading causal LMs from local files only (models)."""
