"""The headline report: open work without exactly one person owning it.

Each ownerless task gets a suggested owner and the reason in plain words. The
evidence is tried from the strongest to the weakest, and the first that names a
person wins:

1. the same work in another source has exactly one person owning it;
2. (several owners) the owner who most recently joined the discussion;
3. the person who most recently joined the discussion, other than the reporter;
4. the person who owns most of the other tasks the same reporter raised;
5. the person who owns most of the other open work in the same project.

Participants are kept by the ledger in the order people first acted on a task,
so "most recently joined" is the honest claim, not "most active".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from syncd.rules.kinds import is_team
from syncd.rules.view import TaskView


@dataclass(frozen=True, slots=True)
class Problem:
    code: str  # none | team_only | team | several | disagree
    text: str


@dataclass(frozen=True, slots=True)
class Suggestion:
    person: str | None
    reason: str


def ownership_problem(view: TaskView, aliases: frozenset[str]) -> Problem | None:
    """Why the task does not have exactly one person owning it, or None when it does."""
    teams = [owner for owner in view.owners if is_team(owner, aliases)]
    if teams:
        return Problem("team", f"owned by a team, not a person: {', '.join(teams)}")
    if len(view.owners) > 1:
        return Problem("several", f"{len(view.owners)} owners: {', '.join(view.owners)}")
    if not view.owners:
        if view.team:
            return Problem("team_only", f"no owner (team {view.team} only)")
        return Problem("none", "no owner")
    for other in view.same_work:
        # A team on the other item names nobody, so it cannot disagree with a person here.
        people = [owner for owner in other.owners if not is_team(owner, aliases)]
        if people and set(people) != set(view.owners):
            return Problem(
                "disagree",
                f"owners disagree across sources: {view.owners[0]} here, "
                f"{', '.join(people)} on {other.key}",
            )
    return None


class OwnerIndex:
    """Who usually owns what: single person owners by reporter and by project."""

    def __init__(self, views: list[TaskView], aliases: frozenset[str]) -> None:
        self.aliases = aliases
        self.by_reporter: dict[str, Counter[str]] = {}
        self.raised: Counter[str] = Counter()
        self.by_project: dict[tuple[str, str], Counter[str]] = {}
        self.open_in_project: Counter[tuple[str, str]] = Counter()
        for view in views:
            owner = self.sole_person(view.owners)
            if view.reporter:
                self.raised[view.reporter] += 1
                if owner:
                    self.by_reporter.setdefault(view.reporter, Counter())[owner] += 1
            if not view.closed:
                place = (view.source, view.project)
                self.open_in_project[place] += 1
                if owner:
                    self.by_project.setdefault(place, Counter())[owner] += 1

    def person(self, who: str) -> bool:
        return not is_team(who, self.aliases)

    def sole_person(self, owners: list[str]) -> str | None:
        return owners[0] if len(owners) == 1 and self.person(owners[0]) else None


def suggest_owner(view: TaskView, problem: Problem, index: OwnerIndex) -> Suggestion:
    for rule in (_from_same_work, _from_owners, _from_participants, _from_reporter, _from_project):
        suggestion = rule(view, problem, index)
        if suggestion is not None:
            return suggestion
    return Suggestion(None, "nobody is active on it yet and its project has no usual owner")


def _from_same_work(view: TaskView, problem: Problem, index: OwnerIndex) -> Suggestion | None:
    # The most recently active linked item speaks for the work when they disagree.
    linked = sorted(view.same_work, key=_activity, reverse=True)
    for other in linked:
        owner = index.sole_person(other.owners)
        if owner and (problem.code != "several" or owner in view.owners):
            return Suggestion(owner, f"{owner} owns the same work in {other.source} ({other.key})")
    return None


def _from_owners(view: TaskView, problem: Problem, index: OwnerIndex) -> Suggestion | None:
    if problem.code != "several":
        return None
    people = [owner for owner in view.owners if index.person(owner)]
    joined = [p for p in reversed(view.participants) if p in people]
    if joined:
        return Suggestion(
            joined[0],
            f"{joined[0]} is one of the {len(view.owners)} owners and the latest of them "
            "to take part in it",
        )
    return Suggestion(
        people[0], f"{people[0]} is listed first of the {len(view.owners)} owners; none took part"
    )


def _from_participants(view: TaskView, problem: Problem, index: OwnerIndex) -> Suggestion | None:
    people = [p for p in view.participants if p != view.reporter and index.person(p)]
    if not people:
        return None
    latest = people[-1]
    if len(people) == 1:
        besides = " besides the reporter" if view.reporter else ""
        return Suggestion(latest, f"{latest} is the only person{besides} active on it")
    return Suggestion(
        latest, f"{latest} joined it most recently of the {len(people)} people active on it"
    )


def _from_reporter(view: TaskView, problem: Problem, index: OwnerIndex) -> Suggestion | None:
    if not view.reporter:
        return None
    owners = index.by_reporter.get(view.reporter)
    if not owners:
        return None
    person, count = owners.most_common(1)[0]
    others = index.raised[view.reporter] - 1
    return Suggestion(
        person, f"{person} owns {count} of the {others} other tasks {view.reporter} raised"
    )


def _from_project(view: TaskView, problem: Problem, index: OwnerIndex) -> Suggestion | None:
    place = (view.source, view.project)
    owners = index.by_project.get(place)
    if not owners:
        return None
    person, count = owners.most_common(1)[0]
    others = index.open_in_project[place] - 1
    return Suggestion(
        person, f"{person} owns {count} of the {others} other open tasks in {view.project}"
    )


def _activity(view: TaskView) -> str:
    moment = view.last_activity_at or view.updated_at or view.created_at
    return moment.isoformat() if moment else ""
