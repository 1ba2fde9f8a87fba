"""The review guidelines: a versioned markdown file beside the decision log (review/guidelines.md).

The file starts with a front matter block naming its version; every decision records the version it was made
under, so a change of the guidelines is visible in the audit trail:

    ---
    version: 2
    ---
    # 审核准则 ..."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from vad.core.errors import InputError

_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)


@dataclass(frozen=True)
class Guidelines:
    version: str
    text: str      # the markdown after the front matter
    sha256: str

    def html(self) -> str:
        """Rendered markdown; raw HTML in the file is escaped, and unsafe link schemes are refused."""
        from markdown_it import MarkdownIt

        return MarkdownIt("commonmark", {"html": False}).enable("table").render(self.text)


def read_guidelines(path: str | Path) -> Guidelines:
    path = Path(path)
    if not path.exists():
        return Guidelines("", "", "")
    raw = path.read_text(encoding="utf-8")
    m = _FRONT.match(raw)
    version = ""
    if m:
        for line in m.group(1).splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "version":
                version = val.strip().strip("'\"")
    if not version:
        raise InputError(f"{path}:1", "the guidelines need a front matter block with a version (---\\nversion: 1\\n---)")
    return Guidelines(version, raw[m.end():], hashlib.sha256(raw.encode("utf-8")).hexdigest())
