"""Readers for the recorded exchanges and examples in ``../shared/corpus``."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from corpus_root import CORPUS


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def corpus_file(relative: str) -> Path:
    path = CORPUS / relative
    if not path.exists():
        pytest.fail(f"corpus file {relative} is missing from {CORPUS}")
    return path


def recording(name: str) -> list[Exchange]:
    """A PyGithub ReplayData file: 11 lines per exchange."""
    lines = corpus_file(f"github/{name}.txt").read_text(encoding="utf-8").split("\n")
    exchanges: list[Exchange] = []
    i = 0
    while i + 10 <= len(lines):
        if not lines[i].strip():
            i += 1
            continue
        headers = {k.lower(): v for k, v in ast.literal_eval(lines[i + 8])}
        exchanges.append(Exchange(lines[i + 1], lines[i + 4], int(lines[i + 7]), headers,
                                  lines[i + 9]))
        i += 11
    return exchanges


def example(relative: str) -> Any:
    return json.loads(corpus_file(relative).read_text(encoding="utf-8"))


def slack_example(method: str, name: str = "success") -> Any:
    return example(f"slack/slack-api-ref-methods/{method}.json")["examples"][name]["example"]
