"""Helpers shared by the sandbox tests (a unique module name: tests/ has no packages)."""

from __future__ import annotations

from typing import Any

import httpx

from syncd.sandbox import Sandbox

GITHUB_TOKEN = "sandbox-github-token"


def gh_get(sandbox: Sandbox, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"token {GITHUB_TOKEN}", **kwargs.pop("headers", {})}
    return httpx.get(sandbox.urls["github"] + path, headers=headers, timeout=5, **kwargs)
