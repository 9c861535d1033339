"""The JQL subset syncd emits, parsed into a filter and an ordering.

Supported: ``project = X``, ``project in (A, B)``, ``updated|created >=|>|<=|< "yyyy-MM-dd[ HH:mm]"``
(minute precision, or a relative ``"-5d"``), ``key = K``, ``key in (...)``, joined by ``AND``,
grouped by parentheses, then ``ORDER BY updated|created|key|id [ASC|DESC], ...``. Anything else is a ``JqlError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from syncd.sandbox.clock import parse_when
from syncd.sandbox.world import JiraIssue, World

_TOKEN = re.compile(r'\s*(?:(?P<str>"[^"]*"|\'[^\']*\')|(?P<op>>=|<=|!=|=|>|<|\(|\)|,)'
                    r'|(?P<word>[^\s=<>!(),"\']+))')


class JqlError(ValueError):
    """The query is outside the supported subset; the message is Jira's wording."""


@dataclass
class Query:
    filters: list[Callable[[JiraIssue], bool]] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)

    def run(self, world: World) -> list[JiraIssue]:
        issues = [i for i in world.jira_issues.values() if all(f(i) for f in self.filters)]
        for name, descending in reversed(self.order or [("id", True)]):
            issues.sort(key=_SORT_KEYS[name], reverse=descending)
        return issues


def _issue_number(issue: JiraIssue) -> tuple[str, int]:
    project, _, number = issue.key.rpartition("-")
    return project, int(number)


_SORT_KEYS: dict[str, Callable[[JiraIssue], Any]] = {
    "updated": lambda i: (i.updated, int(i.id)),
    "created": lambda i: (i.created, int(i.id)),
    "key": _issue_number,
    "id": lambda i: int(i.id),
}


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise JqlError(f"Error in the JQL Query: unexpected character at position {pos}.")
        tokens.append(match.group(match.lastgroup or "word"))
        pos = match.end()
    return tokens


def parse(text: str, world: World) -> Query:
    tokens = tokenize(text)
    filters, pos = _conjunction(tokens, 0, world)
    query = Query(filters=filters)
    if pos < len(tokens) and tokens[pos] == ")":
        raise JqlError("Error in the JQL Query: unbalanced ')'.")
    if pos < len(tokens):
        query.order = _order_by(tokens, pos)
    return query


def _conjunction(tokens: list[str], pos: int,
                 world: World) -> tuple[list[Callable[[JiraIssue], bool]], int]:
    """Clauses joined by AND, up to ORDER BY, a closing ')' or the end; '(...)' nests."""
    filters: list[Callable[[JiraIssue], bool]] = []
    while pos < len(tokens) and tokens[pos].upper() != "ORDER" and tokens[pos] != ")":
        if filters:
            if tokens[pos].upper() != "AND":
                raise JqlError(f"Error in the JQL Query: expecting 'AND' or 'ORDER BY' but got "
                               f"'{tokens[pos]}'. Only AND is supported by this sandbox.")
            pos += 1
        if pos < len(tokens) and tokens[pos] == "(":
            inner, pos = _conjunction(tokens, pos + 1, world)
            if pos >= len(tokens) or tokens[pos] != ")":
                raise JqlError("Error in the JQL Query: expecting ')' before the end of the query.")
            pos += 1
            filters.append(lambda i, inner=inner: all(f(i) for f in inner))  # type: ignore[misc]
            continue
        check, pos = _clause(tokens, pos, world)
        filters.append(check)
    return filters, pos


def _unquote(token: str) -> str:
    return token[1:-1] if token[:1] in "\"'" else token


def _clause(tokens: list[str], pos: int, world: World) -> tuple[Callable[[JiraIssue], bool], int]:
    if pos + 2 > len(tokens):
        raise JqlError("Error in the JQL Query: the query ends unexpectedly.")
    name, op = tokens[pos].lower(), tokens[pos + 1].lower()
    if name == "project" or name == "key":
        values, end = _values(tokens, pos + 1, op)
        if name == "project":
            keys = {_project_key(world, v) for v in values}
            return (lambda i: i.project in keys), end
        # Old keys of moved issues still match, as in Jira.
        ids = {world.jira_keys.get(v.upper()) for v in values}
        return (lambda i: i.id in ids), end
    if name in ("updated", "created") and op in (">=", ">", "<=", "<"):
        if pos + 2 >= len(tokens):
            raise JqlError("Error in the JQL Query: the query ends unexpectedly.")
        moment = _date(_unquote(tokens[pos + 2]), world)
        return _compare(name, op, moment), pos + 3
    raise JqlError(f"Field '{tokens[pos]}' is not supported by the sandbox JQL subset "
                   f"(project, key, updated, created).")


def _values(tokens: list[str], pos: int, op: str) -> tuple[list[str], int]:
    if op == "=":
        if pos + 1 >= len(tokens):
            raise JqlError("Error in the JQL Query: the query ends unexpectedly.")
        return [_unquote(tokens[pos + 1])], pos + 2
    if op != "in" or pos + 1 >= len(tokens) or tokens[pos + 1] != "(":
        raise JqlError(f"Error in the JQL Query: the operator '{tokens[pos]}' is not supported.")
    values: list[str] = []
    pos += 2
    while pos < len(tokens) and tokens[pos] != ")":
        if tokens[pos] != ",":
            values.append(_unquote(tokens[pos]))
        pos += 1
    if pos >= len(tokens):
        raise JqlError("Error in the JQL Query: expecting ')' before the end of the query.")
    return values, pos + 1


def _project_key(world: World, value: str) -> str:
    for project in world.projects.values():
        if value.upper() == project.key or value == project.id or value == project.name:
            return project.key
    raise JqlError(f"The value '{value}' does not exist for the field 'project'.")


def _date(text: str, world: World) -> datetime:
    """Jira dates have minute precision: ``yyyy-MM-dd HH:mm``, ``yyyy/MM/dd`` or ``-5d``."""
    for fmt in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    relative = re.fullmatch(r"([+-]?)(\d+)([mhdw])", text)
    if relative:
        sign = relative.group(1) or "+"
        moment = parse_when(f"{sign}{relative.group(2)}{relative.group(3)}", world.now)
        assert moment is not None
        return moment.replace(second=0, microsecond=0)
    raise JqlError(f"Date value '{text}' for field 'updated' is invalid. Valid formats include: "
                   "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a "
                   "period format e.g. '-5d', '4w 2d'.")


def _compare(name: str, op: str, moment: datetime) -> Callable[[JiraIssue], bool]:
    def value(issue: JiraIssue) -> datetime:
        stamp: datetime = getattr(issue, name)
        return stamp.replace(second=0, microsecond=0)  # minute precision, as Jira compares

    table: dict[str, Callable[[JiraIssue], bool]] = {
        ">=": lambda i: value(i) >= moment, ">": lambda i: value(i) > moment,
        "<=": lambda i: value(i) <= moment, "<": lambda i: value(i) < moment,
    }
    return table[op]


def _order_by(tokens: list[str], pos: int) -> list[tuple[str, bool]]:
    if pos + 1 >= len(tokens) or tokens[pos + 1].upper() != "BY":
        raise JqlError("Error in the JQL Query: expecting 'BY' after 'ORDER'.")
    order: list[tuple[str, bool]] = []
    pos += 2
    while pos < len(tokens):
        name = tokens[pos].lower()
        if name not in _SORT_KEYS:
            raise JqlError(f"Not able to sort using field '{tokens[pos]}'.")
        descending = False
        pos += 1
        if pos < len(tokens) and tokens[pos].upper() in ("ASC", "DESC"):
            descending = tokens[pos].upper() == "DESC"
            pos += 1
        order.append((name, descending))
        if pos < len(tokens):
            if tokens[pos] != ",":
                raise JqlError(f"Error in the JQL Query: unexpected '{tokens[pos]}'.")
            pos += 1
    if not order:
        raise JqlError("Error in the JQL Query: expecting a field after 'ORDER BY'.")
    return order
