"""Helpers the tests (and a few benchmarks) share; no tests and no fixtures here (those are in tests/conftest.py).

    project.py        ROOT, ARTIFACTS, manual_line (one raw manual line), record_provenance (a raw folder's
                      PROVENANCE.json); conftest re-exports them
    fake_openai.py    FakeOpenAI: a real OpenAI-compatible HTTP server on 127.0.0.1 with a seeded fault schedule
    fake_model.py     fake_model(messages): plausible answers for every evolve/translate prompt; the markers
                      (【同】, JAPANESE, ...) that make it misbehave; REASK_PREFIX, CLAUSES
    llm_stages.py     SEED_PROMPTS/make_seeds, PAIR_TEXTS/make_pairs, write_records, read_jsonl, set_llm_params,
                      run_stage, check_books: the evolve/translate stage tests' inputs and book-keeping
    review.py         the small review project: records, make_project, set_review, decide, run, write_jsonl, the XSS
                      texts
    review_server.py  Server: `vad review serve` as its own process on a free port
    ifd_samples.py    SAMPLES (30 instruction/input/output triples), IFD_PARAMS, spearman, sample_record
    export_build.py   build_project: the export/report tests' small built project; EXPORT, REVIEW, metrics

Test modules import these as `support.<module>` (pytest puts tests/ on sys.path); benchmarks put the project root
on sys.path and import `tests.support.<module>`. Modules here import each other relatively, never a test module
or conftest, so both names work."""
