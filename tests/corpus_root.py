"""Where the shared corpus of recorded API responses and real emails lives.

The corpus sits beside the project (``../shared/corpus``) in a developer's checkout; a
clone elsewhere (CI) finds it through ``$SYNCD_CORPUS`` or the workplace's fixed copy.
A missing corpus is an error, never a skip: the corpus tests are the point.
"""

from __future__ import annotations

import os
from pathlib import Path

_PROJECT = Path(__file__).resolve().parents[1]
_CANDIDATES = [
    *([Path(os.environ["SYNCD_CORPUS"])] if os.environ.get("SYNCD_CORPUS") else []),
    _PROJECT.parent / "shared" / "corpus",
    Path("/work/shared/corpus"),
]


def find_corpus() -> Path:
    for candidate in _CANDIDATES:
        if (candidate / "SOURCES.md").is_file():
            return candidate
    tried = ", ".join(str(path) for path in _CANDIDATES)
    raise RuntimeError(f"the shared corpus was not found (tried {tried}); set SYNCD_CORPUS")


CORPUS = find_corpus()
