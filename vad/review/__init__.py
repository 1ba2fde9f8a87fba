"""Human review: the decision log (`log`), what the decisions mean for each record (`state`), reviewer agreement
(`agreement`), and the review app (`app`, `vad review serve`) with its queue index, record context and LLM judge
suggestions. The review stage's logic (vad/publish/review.py) uses only `log`, `state` and `agreement`."""
