"""Shared entry point for the thin `stages/*.py` scripts: logging, and a clean one-screen error for bad input."""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from vad.io import InputError
from vad.ledger import AccountingError
from vad.validate import ValidationError


def stage_main(name: str, body: Callable[[], dict]) -> None:
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", stream=sys.stderr)
    for noisy in ("great_expectations", "httpx", "httpx2", "openai", "urllib3", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        metrics = body()
    except (InputError, ValidationError, AccountingError) as e:
        print(f"\nstage {name} failed: {e}", file=sys.stderr)
        sys.exit(1)
    summary = {k: v for k, v in (metrics or {}).items() if k in ("in", "created", "out", "ledgered", "consumed")}
    logging.getLogger(name).info("done: %s", summary)
