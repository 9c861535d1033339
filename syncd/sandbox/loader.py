"""Turn a world document (JSON) into a populated ``World``.

The document format is described in ``syncd/sandbox/README.md``; every date may be
relative to now (``"-3d"``) so a world stays valid on any day.
"""

from __future__ import annotations

from typing import Any

from syncd.sandbox.clock import parse_day, slack_ts
from syncd.sandbox.scenario import parse_scenario
from syncd.sandbox.world import (
    JIRA_STATUSES,
    GhComment,
    GhEvent,
    GhIssue,
    GhMilestone,
    GhRepo,
    JiraComment,
    JiraHistory,
    JiraIssue,
    JiraProject,
    JiraWorklog,
    Json,
    Person,
    SlackChannel,
    SlackMessage,
    SlackUser,
    World,
    WorldError,
    _history_item,
)

_DURATION_UNITS = {"w": 5 * 8 * 3600, "d": 8 * 3600, "h": 3600, "m": 60}


def seconds(value: Any) -> int | None:
    """Jira-style durations: ``"2h"``, ``"1d 4h"``, or plain seconds."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    total = 0
    for part in str(value).split():
        unit = part[-1]
        if unit not in _DURATION_UNITS:
            raise WorldError(f"bad duration {value!r}")
        total += int(float(part[:-1]) * _DURATION_UNITS[unit])
    return total


def populate(world: World, data: Json) -> None:
    for kind, tokens in (data.get("tokens") or {}).items():
        world.tokens[kind] = [tokens] if isinstance(tokens, str) else list(tokens)
    world.settings = dict(data.get("settings") or {})
    for spec in data.get("people", []):
        person = Person(id=spec["id"], name=spec.get("name", spec["id"]),
                        email=spec.get("email"), github=spec.get("github"),
                        jira=spec.get("jira"), slack=spec.get("slack"))
        world.people[person.id] = person
    _load_github(world, data.get("github") or {})
    _load_jira(world, data.get("jira") or {})
    _load_slack(world, data.get("slack") or {})
    world.scenario = parse_scenario(data)


# ---------------------------------------------------------------- GitHub


def _load_github(world: World, data: Json) -> None:
    world.gh_viewer = data.get("viewer", world.gh_viewer)
    world.gh_rate_limit = int(data.get("rate_limit", world.gh_rate_limit))
    world.ensure_gh_user(world.gh_viewer)
    for person in world.people.values():
        if person.github:
            world.ensure_gh_user(person.github)
    pending: list[tuple[GhIssue, Json]] = []
    for spec in data.get("repos", []):
        repo = _build_repo(world, spec)
        for issue_spec in spec.get("issues", []):
            pending.append((build_gh_issue(world, repo, issue_spec), issue_spec))
    for issue, spec in pending:
        _link_gh_issue(world, issue, spec)


def _build_repo(world: World, spec: Json) -> GhRepo:
    owner, name = spec["full_name"].split("/", 1)
    world.ensure_gh_user(owner, "Organization")
    repo = GhRepo(id=world.next_gh_id(), owner=owner, name=name,
                  description=spec.get("description", ""), private=spec.get("private", False),
                  created_at=world.when(spec.get("created_at", "-365d")))
    for label in spec.get("labels", []):
        label_name, colour = (label, "ededed") if isinstance(label, str) else (
            label["name"], label.get("color", "ededed"))
        repo.labels[label_name] = colour
        repo.label_ids[label_name] = world.next_gh_id()
    for ms in spec.get("milestones", []):
        number = int(ms["number"])
        repo.milestones[number] = GhMilestone(
            number=number, id=world.next_gh_id(), title=ms["title"],
            state=ms.get("state", "open"), description=ms.get("description"),
            due_on=world.when(ms["due_on"]) if ms.get("due_on") else None,
            created_at=world.when(ms.get("created_at", "-30d")),
            updated_at=world.when(ms.get("updated_at", "-1d")), creator=world.gh_viewer)
    world.repos[repo.full_name.lower()] = repo
    return repo


def build_gh_issue(world: World, repo: GhRepo, spec: Json) -> GhIssue:
    """Create and index one issue or pull request from its world-file entry."""
    number = int(spec.get("number") or repo.next_number)
    if number in repo.issues:
        raise WorldError(f"duplicate issue {repo.full_name}#{number}")
    repo.next_number = max(repo.next_number, number + 1)
    created = world.when(spec.get("created_at"), world.now)
    updated = world.when(spec.get("updated_at"), created)
    state = spec.get("state", "open")
    for label in spec.get("labels", []):
        if label not in repo.labels:
            repo.labels[label] = "ededed"
            repo.label_ids[label] = world.next_gh_id()
    issue = GhIssue(
        id=int(spec.get("id") or world.next_gh_id()), number=number, repo=repo.full_name,
        title=spec["title"], body=spec.get("body"), user=world.gh_login(spec.get("user")
                                                                       or world.gh_viewer),
        created_at=created, updated_at=updated, state=state,
        state_reason=spec.get("state_reason", "completed" if state == "closed" else None),
        assignees=[world.gh_login(a) for a in spec.get("assignees", [])],
        labels=list(spec.get("labels", [])), milestone=spec.get("milestone"),
        locked=bool(spec.get("locked", False)))
    if state == "closed":
        issue.closed_at = world.when(spec.get("closed_at"), updated)
        issue.closed_by = world.gh_login(spec.get("closed_by") or issue.user)
    if "pull_request" in spec:
        pr = spec["pull_request"] or {}
        merged = pr.get("merged_at")
        issue.pull_request = {"merged_at": world.when(merged) if merged else None}
    for c in spec.get("comments", []):
        when = world.when(c.get("created_at"), updated)
        comment = GhComment(world.next_gh_id(), issue.id, world.gh_login(c["user"]), c["body"],
                            when, world.when(c.get("updated_at"), when))
        issue.comments.append(comment)
        world.gh_comments[comment.id] = comment
    for e in spec.get("events", []):
        detail = {k: v for k, v in e.items() if k not in ("actor", "event", "created_at")}
        issue.events.append(GhEvent(world.next_gh_id(), issue.id, world.gh_login(e["actor"]),
                                    e["event"], world.when(e.get("created_at"), updated),
                                    detail))
    repo.issues[number] = issue
    world.gh_issues[issue.id] = issue
    return issue


def _link_gh_issue(world: World, issue: GhIssue, spec: Json) -> None:
    """Sub-issues and blocked-by refer to other issues: ``7`` or ``"owner/repo#7"``."""
    for ref in spec.get("sub_issues", []):
        child = _gh_ref(world, issue.repo, ref)
        issue.sub_issue_ids.append(child.id)
        child.parent_id = issue.id
    for ref in spec.get("blocked_by", []):
        issue.blocked_by_ids.append(_gh_ref(world, issue.repo, ref).id)


def _gh_ref(world: World, repo: str, ref: int | str) -> GhIssue:
    full_name, number = (repo, int(ref)) if isinstance(ref, int) or "#" not in str(ref) else (
        str(ref).split("#")[0], int(str(ref).split("#")[1]))
    issue = world.gh_issue(full_name, number)
    if issue is None:
        raise WorldError(f"no GitHub issue {full_name}#{number}")
    return issue


# ---------------------------------------------------------------- Jira


def _load_jira(world: World, data: Json) -> None:
    world.jira_deployment = data.get("deployment_type", world.jira_deployment)
    world.jira_viewer = data.get("viewer", world.jira_viewer)
    world.jira_users[world.jira_viewer] = {"accountId": world.jira_viewer,
                                           "displayName": "syncd bot", "email": None}
    for person in world.people.values():
        if person.jira:
            world.jira_account(person.id)
    for spec in data.get("projects", []):
        project = JiraProject(id=str(spec.get("id") or 10_000 + len(world.projects)),
                              key=spec["key"].upper(), name=spec.get("name", spec["key"]))
        world.projects[project.key] = project
    pending: list[tuple[JiraIssue, Json]] = []
    for spec in data.get("issues", []):
        pending.append((build_jira_issue(world, spec), spec))
    for issue, spec in pending:
        if spec.get("parent"):
            parent = world.jira_issue(spec["parent"])
            if parent is None:
                raise WorldError(f"no Jira parent {spec['parent']} for {issue.key}")
            issue.parent_id = parent.id
        for ref in spec.get("blocked_by", []):
            blocker = world.jira_issue(ref)
            if blocker is None:
                raise WorldError(f"no Jira issue {ref} blocking {issue.key}")
            issue.blocked_by_ids.append(blocker.id)


def build_jira_issue(world: World, spec: Json) -> JiraIssue:
    key = spec["key"].upper()
    project = world.projects.get(key.rsplit("-", 1)[0])
    if project is None:
        raise WorldError(f"no Jira project for {key}")
    project.next_number = max(project.next_number, int(key.rsplit("-", 1)[1]) + 1)
    created = world.when(spec.get("created"), world.now)
    updated = world.when(spec.get("updated"), created)
    status = spec.get("status", "To Do")
    if status not in JIRA_STATUSES:
        raise WorldError(f"unknown Jira status {status!r} on {key}")
    estimate = seconds(spec.get("estimate"))
    issue = JiraIssue(
        id=str(spec.get("id") or world.next_jira_id()), key=key, project=project.key,
        summary=spec["summary"], created=created, updated=updated,
        description=spec.get("description"), status=status,
        priority=spec.get("priority", "Medium"), issuetype=spec.get("issuetype", "Task"),
        assignee=world.jira_account(spec.get("assignee")),
        reporter=world.jira_account(spec.get("reporter")),
        duedate=parse_day(spec.get("duedate"), world.now), labels=list(spec.get("labels", [])),
        original_estimate=estimate,
        remaining_estimate=seconds(spec.get("remaining", spec.get("estimate"))),
        acceptance_criteria=spec.get("acceptance_criteria"), team=spec.get("team"))
    if JIRA_STATUSES[status][1] == "done":
        issue.resolutiondate = world.when(spec.get("resolutiondate"), updated)
    for n, c in enumerate(spec.get("comments", [])):
        when = world.when(c.get("created"), updated)
        author = world.jira_account(c["author"]) or world.jira_viewer
        issue.comments.append(JiraComment(f"{issue.id}{n:03d}", author, c["body"], when,
                                          world.when(c.get("updated"), when),
                                          list(c.get("properties", []))))
    for n, w in enumerate(spec.get("worklogs", [])):
        started = world.when(w.get("started"), updated)
        author = world.jira_account(w["author"]) or world.jira_viewer
        issue.worklogs.append(JiraWorklog(f"{issue.id}{n:03d}", author,
                                          seconds(w["time_spent"]) or 0, started, started,
                                          w.get("comment", "")))
    for n, h in enumerate(spec.get("changelog", [])):
        author = world.jira_account(h.get("author")) or world.jira_viewer
        items = [_history_item(i["field"], i.get("from"), i.get("to")) for i in h["items"]]
        issue.changelog.append(JiraHistory(f"{issue.id}{n:03d}", author,
                                           world.when(h.get("created"), updated), items))
    world.jira_issues[issue.id] = issue
    world.jira_keys[key] = issue.id
    for old in spec.get("old_keys", []):
        world.jira_keys[old.upper()] = issue.id
    return issue


# ---------------------------------------------------------------- Slack


def _load_slack(world: World, data: Json) -> None:
    world.slack_team.update(data.get("team", {}))
    world.slack_bot.update(data.get("bot", {}))
    bot = world.slack_bot
    world.slack_users[bot["user_id"]] = SlackUser(bot["user_id"], bot["name"], bot["name"],
                                                  is_bot=True)
    for person in world.people.values():
        if person.slack:
            handle = (person.email or person.id).split("@")[0]
            world.slack_users[person.slack] = SlackUser(person.slack, handle, person.name,
                                                        email=person.email)
    for spec in data.get("users", []):
        world.slack_users[spec["id"]] = SlackUser(
            spec["id"], spec.get("name", spec["id"]), spec.get("real_name", spec["id"]),
            email=spec.get("email"), is_bot=spec.get("is_bot", False),
            deleted=spec.get("deleted", False))
    for spec in data.get("channels", []):
        channel = SlackChannel(id=spec["id"], name=spec.get("name", spec["id"]))
        world.channels[channel.id] = channel
        for message in spec.get("messages", []):
            _load_message(world, channel, message, None)


def _load_message(world: World, channel: SlackChannel, spec: Json, thread: str | None) -> None:
    when = world.when(spec.get("ts") or spec.get("at"), world.now)
    ts = spec["ts"] if _is_ts(spec.get("ts")) else slack_ts(when)
    while ts in channel.messages:
        ts = f"{float(ts) + 0.000001:.6f}"
    user = world.slack_user_id(spec["user"]) if spec.get("user") else None
    message = SlackMessage(ts=ts, channel=channel.id, text=spec.get("text", ""), user=user,
                           bot_id=spec.get("bot_id"), thread_ts=thread,
                           metadata=spec.get("metadata"), subtype=spec.get("subtype"))
    for name, users in (spec.get("reactions") or {}).items():
        message.reactions[name] = [world.slack_user_id(u) for u in users]
    world.insert_slack_message(channel, message)
    for reply in spec.get("replies", []):
        _load_message(world, channel, reply, ts)


def _is_ts(value: Any) -> bool:
    return isinstance(value, str) and value.replace(".", "", 1).isdigit() and "." in value
