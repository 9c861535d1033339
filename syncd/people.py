"""People: one person, many identities across tools.

`[people.<id>]` maps a person to their handle in each tool. Connectors resolve a
tool's handle (GitHub login, Jira accountId, Slack user id, email address) to a
person id; an identity nobody mapped stays visible as `<kind>:<handle>` so a lead
can add it to the config.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

IDENTITY_KINDS = ("email", "github", "jira", "slack")


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str | None = None
    handles: Mapping[str, str] = field(default_factory=dict)


class PeopleDirectory:
    """Resolves tool identities to person ids; remembers what it could not map."""

    def __init__(self, people: Iterable[Person] = ()) -> None:
        self._people = {p.id: p for p in people}
        self._by_handle: dict[tuple[str, str], str] = {}
        for person in self._people.values():
            for kind, handle in person.handles.items():
                self._by_handle[(kind, _fold(kind, handle))] = person.id
        self.unmapped: set[str] = set()

    def resolve(self, kind: str, handle: str) -> str:
        """The person id for `handle` in tool `kind`, else `<kind>:<handle>`."""
        person_id = self._by_handle.get((kind, _fold(kind, handle)))
        if person_id is not None:
            return person_id
        unmapped = f"{kind}:{handle}"
        self.unmapped.add(unmapped)
        return unmapped

    def handle_of(self, person_id: str, kind: str) -> str | None:
        """The person's handle in tool `kind` (for mentions), if configured."""
        person = self._people.get(person_id)
        if person is not None:
            return person.handles.get(kind)
        prefix = f"{kind}:"
        return person_id[len(prefix) :] if person_id.startswith(prefix) else None

    def get(self, person_id: str) -> Person | None:
        return self._people.get(person_id)

    def __iter__(self) -> Iterator[Person]:
        return iter(self._people.values())


def _fold(kind: str, handle: str) -> str:
    # GitHub logins and email addresses are case-insensitive; Jira and Slack ids are not.
    return handle.lower() if kind in ("github", "email") else handle
