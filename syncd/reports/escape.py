"""Report values made inert for each format: CSV, Markdown, HTML and the terminal.

Reports show text from every source (titles, names, labels, URLs). Each format
has its own active syntax, and every value passes the matching function here on
its way out; `printable` first takes out control, bidi and zero-width characters.

- CSV: a cell starting with `=`, `+`, `-` or `@` (or with a tab or a line break
  before one) is a formula to Excel and LibreOffice; OWASP's advice is a leading
  single quote, with every text cell quoted.
- Markdown: HTML is escaped (a renderer that allows HTML would run
  `<img onerror=…>`), and so are the characters that end a table cell or row or
  open a link or a code span.
- HTML: jinja's autoescape covers text; links keep only `http`, `https` and
  `mailto` targets (a `javascript:` URL is shown as text), and the page carries
  a Content-Security-Policy that allows nothing but its own stylesheet.
- Terminal: values become rich `Text`, which rich never parses as markup.
- JSON: data stays as it is, but bidi controls are written as `\\u` escapes so a
  terminal or an editor showing the file cannot reorder it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urlsplit

from rich.text import Text

from syncd.plaintext import printable

# What a report shows of one value at most; CSV keeps up to a spreadsheet cell's limit.
CELL_LIMIT = 500
CSV_CELL_LIMIT = 32_000
FORMULA_START = ("=", "+", "-", "@")
LINK_SCHEMES = frozenset({"http", "https", "mailto"})

_MARKDOWN_SPECIAL = re.compile(r"[\\|`\[\]*_]")
# Characters JSON leaves as they are that still act on a terminal or in an editor.
_JSON_ESCAPED = re.compile(
    "[\x80-\x9f\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)
# Browsers drop tabs and newlines inside a URL, so `java\tscript:` is `javascript:`.
_URL_IGNORED = re.compile(r"[\x00-\x20\x7f-\x9f]")


def csv_cell(value: str | int | float | None) -> str | int | float:
    """A CSV cell that a spreadsheet reads as the text it is, never as a formula."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    text = printable(value, multiline=True, limit=CSV_CELL_LIMIT)
    if text.lstrip()[:1] in FORMULA_START or value[:1] in ("\t", "\r"):
        return "'" + text
    return text


def markdown_cell(value: str | int | float | None) -> str:
    """A value for a Markdown table cell: one line, no HTML, no cell or link syntax."""
    if value is None:
        return ""
    text = printable(str(value), limit=CELL_LIMIT)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(lambda m: "\\" + m.group(), text)


def safe_href(url: object) -> str | None:
    """`url` if it may be a link target (http, https or mailto), else None."""
    if not isinstance(url, str) or not url:
        return None
    cleaned = _URL_IGNORED.sub("", url)
    try:
        parts = urlsplit(cleaned)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in LINK_SCHEMES or (scheme != "mailto" and not parts.netloc):
        return None
    return cleaned


def html_text(value: object) -> str:
    """A value for the HTML page, before autoescape: one line, printable, capped."""
    return "" if value is None else printable(str(value), limit=CELL_LIMIT)


def terminal_text(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """A value for a rich table: plain text (never markup) of printable characters."""
    text = "" if value is None else printable(str(value), multiline=multiline, limit=CELL_LIMIT)
    return Text(text, style=style)


def json_text(rendered: str) -> str:
    """JSON output with C1, bidi and zero-width characters as `\\u` escapes: the same data."""
    return _JSON_ESCAPED.sub(lambda m: f"\\u{ord(m.group()):04x}", rendered)


def content_security_policy(stylesheet: str) -> str:
    """A policy allowing the one inline stylesheet (by hash) and inline SVG, nothing else."""
    digest = base64.b64encode(hashlib.sha256(stylesheet.encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
