"""Keep secrets out of logs.

Every secret value loaded from the configuration is registered here, and a log
processor replaces it, and anything that looks like a credential (an
`Authorization` header, a bearer token, a key named like a secret), with `***`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

MASK = "***"

SECRET_KEYS = frozenset(
    {
        "token",
        "password",
        "secret",
        "webhook_secret",
        "signing_secret",
        "authorization",
        "api_key",
        "apikey",
        "access_token",
        "client_secret",
        "cookie",
        "set-cookie",
        "x-hub-signature-256",
        "x-slack-signature",
    }
)

# Credentials recognisable by shape, even when nobody registered them:
# (pattern, replacement) where the replacement keeps the scheme word readable.
_PATTERNS = [
    (
        re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\",}\s]+(\s+[^'\",}\s]+)?"),
        r"\1***",
    ),
    (re.compile(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=\-]{6,}"), r"\1 ***"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{6,}"), MASK),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), MASK),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"), MASK),
]

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask `value` wherever it appears in a log line from now on."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact_text(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, key: str | None = None) -> Any:
    """A copy of `value` with secrets masked, walking dicts and lists."""
    if key is not None and key.lower() in SECRET_KEYS and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    if isinstance(value, BaseException):
        return redact_text(repr(value))
    return value


def structlog_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> dict[str, Any]:
    """structlog processor: the last step before rendering."""
    return {k: redact(v, k) for k, v in event_dict.items()}
