"""CValues-style two-choice evaluation of a model (`vad eval`, stage `evaluate`), by job:
items (load and check the items), prompts (the two-choice prompt in both orders), scorer (the loglik
method's log-likelihood scorer), answers (read a generated answer into a choice), metrics (acc, acc*,
consistency, ... and their table), runner (ties them: evaluate, write results, metrics and provenance)."""
