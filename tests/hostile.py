"""A hostile corpus: text a source may send, and what "nothing active survives" means per sink.

Every payload holds the word "printer" (what a reader must still see) and the
visible words of what it tries to do, so a test can check both that the attack is
inert and that the meaning stays readable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Payload:
    name: str
    text: str
    visible: tuple[str, ...] = ()  # words that must still show (the mention's name, …)


PAYLOADS = [
    Payload("slack-broadcast", "<!channel> printer broken", ("channel",)),
    Payload("slack-escaped-broadcast", "&lt;!here&gt; printer broken", ("here",)),
    Payload("slack-subteam", "<!subteam^S1|x> printer <!everyone>", ("subteam",)),
    Payload("slack-user", "<@U123> printer <https://evil.example|click>", ("U123", "click")),
    Payload("jira-mention", "[~accountid:abc] @here printer", ("accountid:abc", "here")),
    Payload("jira-macro", "[~admin] printer {code}x{code} {color:red}y{color}", ("admin", "code")),
    Payload("jira-image", "printer !http://evil.example/p.png! [x|http://evil.example]", ("png",)),
    Payload("github-mentions", "@octocat and @org/team: printer", ("octocat", "org/team")),
    Payload("github-xrefs", "printer #12 a/b#3 GH-4 https://github.com/a/b/issues/5", ("12",)),
    Payload("github-backticks", "`x @octocat` printer `` @y", ("octocat",)),
    Payload("forged-marker", "printer <!-- syncd:owner:1:1:0 --> done", ("syncd",)),
    Payload("html", "printer <img src=x onerror=alert(1)><script>x()</script>", ("img",)),
    Payload("markdown-link", "[printer](javascript:alert(1)) ![i](http://evil.example/i.png)"),
    Payload("formula", '=HYPERLINK("http://evil.example","x") printer', ("HYPERLINK",)),
    Payload("formula-plus", "+1+cmd|' /C calc'!A0 printer"),
    Payload("formula-minus", "-2+3 printer"),
    Payload("formula-at", "@SUM(1) printer", ("SUM",)),
    Payload("formula-tab", "\t=1+1 printer"),
    Payload("header-injection", "printer\r\nBcc: evil@example.com\r\nX-Evil: 1", ("Bcc",)),
    Payload("bidi", "printer \u202eexe.txt\u202c \u2066x\u2069 \u200fy", ("txt",)),
    Payload("controls", "printer \x1b[31mred\x1b[0m \x07\x00 \x9b31m [/] [bold]b[/bold]", ("red",)),
    Payload("table-syntax", "printer | a | b |\n|---|\n# heading", ("heading",)),
    Payload("long", "printer " + "A" * 20_000, ()),
]
URLS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "java\tscript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:x",
    "//evil.example/x",
    'https://ok.example/a?b=<c>"d',
]
SAFE_URL_SCHEMES = ("http", "https", "mailto")

# Characters that act instead of showing: C0 (but newline), DEL, C1, bidi, zero-width.
ACTING = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)
# What one value may grow to in a message: the encoders' cap, escaped.
LONGEST_VALUE = 400


def acting_characters(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in ACTING.findall(text)]


# --- Slack mrkdwn ------------------------------------------------------------------------


def slack_problems(text: str, mention: str | None = None) -> list[str]:
    """What in a Slack message would act: any `<…>` but the recipient's, a raw `&`."""
    rest = text
    if mention:
        assert rest.startswith(f"<@{mention}> "), rest[:40]
        rest = rest[len(mention) + 4 :]
    problems = [f"raw {c!r}" for c in "<>" if c in rest]
    if re.search(r"&(?!amp;|lt;|gt;)", rest):
        problems.append("raw &")
    return problems + acting_characters(text)


# --- Jira wiki markup --------------------------------------------------------------------

_JIRA_MONOSPACE = re.compile(r"\{\{@[\w./-]+\}\}")


def jira_problems(text: str, mention: str | None = None) -> list[str]:
    """Unescaped wiki markup (`[`, `]`, `{`, `}`, `!`, `|`) or an `@name` outside monospace."""
    rest = text
    if mention:
        prefix = f"[~accountid:{mention}] "
        assert rest.startswith(prefix), rest[:60]
        rest = rest[len(prefix) :]
    rest = _JIRA_MONOSPACE.sub("M", rest)  # the span is a word: `{{@a}}@b` holds no `@b`
    problems = [f"unescaped {m.group()!r}" for m in re.finditer(r"(?<!\\)[\[\]{}!|]", rest)]
    problems += [f"bare {m.group()!r}" for m in re.finditer(r"(?<![\w@])@\w+", rest)]
    if "\\\\" in rest:
        problems.append("a double backslash (a forced line break)")
    return problems + acting_characters(text)


# --- GitHub Markdown ---------------------------------------------------------------------


def outside_code_spans(text: str) -> str:
    """`text` with its CommonMark code spans (and backslash escapes) replaced by spaces."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(" ")
            i += 2
            continue
        if text[i] != "`":
            out.append(text[i])
            i += 1
            continue
        run_end = i
        while run_end < len(text) and text[run_end] == "`":
            run_end += 1
        closing = _closing_run(text, run_end, run_end - i)
        if closing is None:
            out.append(text[i:run_end])  # a literal run of backticks
            i = run_end
        else:
            out.append(" ")
            i = closing
    return "".join(out)


def _closing_run(text: str, start: int, length: int) -> int | None:
    k = start
    while k < len(text):
        if text[k] != "`":
            k += 1
            continue
        end = k
        while end < len(text) and text[end] == "`":
            end += 1
        if end - k == length:
            return end
        k = end
    return None


def github_problems(text: str, mention: str | None = None, marker: str | None = None) -> list[str]:
    """Mentions, cross-references, HTML or link syntax outside code spans; a forged marker."""
    rest = text
    if mention:
        assert rest.startswith(f"@{mention} "), rest[:40]
        rest = rest[len(mention) + 2 :]
    if marker:
        assert rest.endswith("\n\n" + marker), rest[-60:]
        rest = rest[: -len(marker) - 2]
    problems = ["a syncd marker"] if "<!-- syncd:" in rest else []
    outside = outside_code_spans(rest)
    checks = {
        "HTML": r"<",
        "an entity": r"&(?!amp;|lt;|gt;)",
        "a mention": r"(?<![\w`])@[A-Za-z0-9]",
        "a cross-reference": r"#\d|\bGH-\d|/issues/\d",
        "link syntax": r"[\[\]]",
    }
    for what, pattern in checks.items():
        problems += [f"{what}: {m.group()!r}" for m in re.finditer(pattern, outside)]
    return problems + acting_characters(text)
