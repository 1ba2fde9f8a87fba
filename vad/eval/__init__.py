"""CValues-style two-choice evaluation of a model (evaluate) on items (items)."""
