"""Jira Cloud REST simulator: v2 paths (what the ``jira`` library speaks) and v3 (ADF bodies)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from syncd.sandbox import jql
from syncd.sandbox.clock import jira_time, utcnow
from syncd.sandbox.context import Context, build_app, json_response, read_body
from syncd.sandbox.faults import Fault
from syncd.sandbox.world import (
    JIRA_ISSUETYPES,
    JIRA_PRIORITIES,
    JIRA_STATUSES,
    JiraComment,
    JiraHistory,
    JiraIssue,
    JiraWorklog,
    Json,
    World,
    WorldError,
)

ACCEPTANCE_FIELD = "customfield_10050"
TEAM_FIELD = "customfield_10001"
CATEGORIES = {"new": (2, "To Do", "blue-gray"), "indeterminate": (4, "In Progress", "yellow"),
              "done": (3, "Done", "green")}
NAVIGABLE = ("summary", "description", "status", "priority", "assignee", "reporter", "creator",
             "duedate", "labels", "issuetype", "parent", "subtasks", "issuelinks",
             "timeoriginalestimate", "timeestimate", "timespent", "aggregatetimeoriginalestimate",
             "aggregatetimeestimate", "aggregatetimespent", "timetracking", "created", "updated",
             "resolutiondate", "resolution", "project", "comment", "worklog", "watches",
             ACCEPTANCE_FIELD, TEAM_FIELD)


class JiraError(Exception):
    def __init__(self, status: int, messages: list[str], errors: Json | None = None) -> None:
        super().__init__("; ".join(messages))
        self.status, self.messages, self.errors = status, messages, errors or {}


def adf(text: str | None) -> Json | None:
    """Plain text as an Atlassian Document (one paragraph per line)."""
    if text is None:
        return None
    paragraphs = [{"type": "paragraph", "content": [{"type": "text", "text": line}]}
                  for line in text.split("\n") if line]
    return {"type": "doc", "version": 1, "content": paragraphs}


def adf_text(value: Any) -> str:
    """The text of an ADF document (or a plain string), for bodies sent to v3."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return ""
    if value.get("type") == "text":
        return str(value.get("text", ""))
    parts = [adf_text(child) for child in value.get("content", [])]
    joiner = "\n" if value.get("type") == "doc" else ""
    return joiner.join(parts)


def _duration(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    hours, rest = divmod(seconds, 3600)
    days, hours = divmod(hours, 8)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours else []
    parts += [f"{rest // 60}m"] if rest // 60 else []
    return " ".join(parts) or "0m"


@dataclass
class JiraRenderer:
    world: World
    base: str
    version: int = 2

    @property
    def api(self) -> str:
        return f"{self.base}/rest/api/{self.version}"

    def text(self, value: str | None) -> Any:
        return adf(value) if self.version == 3 else value

    def user(self, account: str | None) -> Json | None:
        if account is None:
            return None
        info = self.world.jira_users.get(account, {"displayName": account})
        avatar = f"https://avatar.example/{account}"
        data: Json = {
            "self": f"{self.api}/user?accountId={account}", "accountId": account,
            "avatarUrls": {s: f"{avatar}?s={s[:2]}" for s in ("48x48", "24x24", "16x16",
                                                              "32x32")},
            "displayName": info.get("displayName") or account, "active": True,
            "timeZone": "Etc/UTC", "accountType": "atlassian",
        }
        if info.get("email"):
            data["emailAddress"] = info["email"]
        return data

    def status(self, name: str) -> Json:
        status_id, category = JIRA_STATUSES[name]
        cat_id, cat_name, colour = CATEGORIES[category]
        return {"self": f"{self.api}/status/{status_id}", "description": "",
                "iconUrl": f"{self.base}/images/icons/statuses/generic.png", "name": name,
                "id": status_id,
                "statusCategory": {"self": f"{self.api}/statuscategory/{cat_id}", "id": cat_id,
                                   "key": category, "colorName": colour, "name": cat_name}}

    def priority(self, name: str | None) -> Json | None:
        if name is None:
            return None
        number = JIRA_PRIORITIES.index(name) + 1 if name in JIRA_PRIORITIES else 3
        return {"self": f"{self.api}/priority/{number}",
                "iconUrl": f"{self.base}/images/icons/priorities/{name.lower()}.svg",
                "name": name, "id": str(number)}

    def issuetype(self, name: str) -> Json:
        type_id, subtask = JIRA_ISSUETYPES.get(name, ("10001", False))
        return {"self": f"{self.api}/issuetype/{type_id}", "id": type_id, "description": "",
                "iconUrl": f"{self.base}/images/icons/issuetypes/{name.lower()}.png",
                "name": name, "subtask": subtask, "avatarId": 10318,
                "hierarchyLevel": -1 if subtask else 0}

    def project(self, key: str) -> Json:
        project = self.world.projects[key]
        return {"self": f"{self.api}/project/{project.id}", "id": project.id, "key": project.key,
                "name": project.name, "projectTypeKey": "software", "simplified": False,
                "avatarUrls": {s: f"{self.base}/secure/projectavatar?size={s}"
                               for s in ("48x48", "24x24", "16x16", "32x32")}}

    def brief(self, issue: JiraIssue) -> Json:
        """The short issue form used in parent, subtasks and issue links."""
        return {"id": issue.id, "key": issue.key, "self": f"{self.api}/issue/{issue.id}",
                "fields": {"summary": issue.summary, "status": self.status(issue.status),
                           "priority": self.priority(issue.priority),
                           "issuetype": self.issuetype(issue.issuetype)}}

    def links(self, issue: JiraIssue) -> list[Json]:
        link_type = {"id": "10000", "name": "Blocks", "inward": "is blocked by",
                     "outward": "blocks", "self": f"{self.api}/issueLinkType/10000"}
        links: list[Json] = []
        for blocker_id in issue.blocked_by_ids:
            blocker = self.world.jira_issues.get(blocker_id)
            if blocker is not None:
                link_id = str(int(blocker.id) * 31 + int(issue.id))
                links.append({"id": link_id, "self": f"{self.api}/issueLink/{link_id}",
                              "type": link_type, "inwardIssue": self.brief(blocker)})
        for blocked in self.world.jira_blocking(issue):
            link_id = str(int(issue.id) * 31 + int(blocked.id))
            links.append({"id": link_id, "self": f"{self.api}/issueLink/{link_id}",
                          "type": link_type, "outwardIssue": self.brief(blocked)})
        return links

    def comment(self, issue: JiraIssue, comment: JiraComment, properties: bool = False) -> Json:
        data: Json = {
            "self": f"{self.api}/issue/{issue.id}/comment/{comment.id}", "id": comment.id,
            "author": self.user(comment.author), "body": self.text(comment.body),
            "updateAuthor": self.user(comment.author), "created": jira_time(comment.created),
            "updated": jira_time(comment.updated), "jsdPublic": True,
        }
        if properties:
            data["properties"] = [dict(p) for p in comment.properties]
        return data

    def worklog(self, issue: JiraIssue, worklog: JiraWorklog) -> Json:
        return {
            "self": f"{self.api}/issue/{issue.id}/worklog/{worklog.id}",
            "author": self.user(worklog.author), "updateAuthor": self.user(worklog.author),
            "comment": self.text(worklog.comment) if worklog.comment else "",
            "created": jira_time(worklog.created), "updated": jira_time(worklog.created),
            "started": jira_time(worklog.started), "timeSpent": _duration(
                worklog.time_spent_seconds), "timeSpentSeconds": worklog.time_spent_seconds,
            "id": worklog.id, "issueId": issue.id,
        }

    def history(self, history: JiraHistory) -> Json:
        return {"id": history.id, "author": self.user(history.author),
                "created": jira_time(history.created), "items": [dict(i) for i in history.items]}

    def fields(self, issue: JiraIssue) -> Json:
        parent = self.world.jira_issues.get(issue.parent_id) if issue.parent_id else None
        resolution = None
        if issue.resolutiondate is not None:
            resolution = {"self": f"{self.api}/resolution/10000", "id": "10000",
                          "description": "Work has been completed.", "name": "Done"}
        spent = issue.time_spent
        data: Json = {
            "summary": issue.summary, "description": self.text(issue.description),
            "status": self.status(issue.status), "priority": self.priority(issue.priority),
            "assignee": self.user(issue.assignee), "reporter": self.user(issue.reporter),
            "creator": self.user(issue.reporter),
            "duedate": issue.duedate.isoformat() if issue.duedate else None,
            "labels": list(issue.labels), "issuetype": self.issuetype(issue.issuetype),
            "subtasks": [self.brief(c) for c in self.world.jira_children(issue)],
            "issuelinks": self.links(issue),
            "timeoriginalestimate": issue.original_estimate,
            "timeestimate": issue.remaining_estimate, "timespent": spent,
            "aggregatetimeoriginalestimate": issue.original_estimate,
            "aggregatetimeestimate": issue.remaining_estimate, "aggregatetimespent": spent,
            "timetracking": self._timetracking(issue),
            "created": jira_time(issue.created), "updated": jira_time(issue.updated),
            "resolutiondate": jira_time(issue.resolutiondate), "resolution": resolution,
            "project": self.project(issue.project),
            "comment": {"comments": [self.comment(issue, c) for c in issue.comments],
                        "self": f"{self.api}/issue/{issue.id}/comment",
                        "maxResults": len(issue.comments), "total": len(issue.comments),
                        "startAt": 0},
            "worklog": {"startAt": 0, "maxResults": 20, "total": len(issue.worklogs),
                        "worklogs": [self.worklog(issue, w) for w in issue.worklogs[:20]]},
            "watches": {"self": f"{self.api}/issue/{issue.key}/watchers", "watchCount": 0,
                        "isWatching": False},
            ACCEPTANCE_FIELD: self.text(issue.acceptance_criteria),
            TEAM_FIELD: self._team(issue.team),
        }
        if parent is not None:
            data["parent"] = self.brief(parent)
        return data

    def _timetracking(self, issue: JiraIssue) -> Json:
        data: Json = {}
        if issue.original_estimate is not None:
            data["originalEstimate"] = _duration(issue.original_estimate)
            data["originalEstimateSeconds"] = issue.original_estimate
        if issue.remaining_estimate is not None:
            data["remainingEstimate"] = _duration(issue.remaining_estimate)
            data["remainingEstimateSeconds"] = issue.remaining_estimate
        if issue.time_spent is not None:
            data["timeSpent"] = _duration(issue.time_spent)
            data["timeSpentSeconds"] = issue.time_spent
        return data

    def _team(self, team: str | None) -> Json | None:
        if team is None:
            return None
        team_id = hashlib.md5(team.encode()).hexdigest()
        team_uuid = f"{team_id[:8]}-{team_id[8:12]}-{team_id[12:16]}-{team_id[16:20]}-{team_id[20:32]}"
        return {"id": team_uuid, "name": team, "title": team, "isVisible": True,
                "isVerified": False, "isShared": True, "avatarUrl": ""}

    def issue(self, issue: JiraIssue, wanted: set[str] | None, changelog: bool = False) -> Json:
        """The issue with only the ``wanted`` fields (None: every field)."""
        data: Json = {"expand": "renderedFields,names,schema,operations,editmeta,changelog,"
                                "versionedRepresentations", "id": issue.id,
                      "self": f"{self.api}/issue/{issue.id}", "key": issue.key}
        if wanted is None or wanted:
            every = self.fields(issue)
            data["fields"] = every if wanted is None else {
                k: v for k, v in every.items() if k in wanted}
        if changelog:
            histories = [self.history(h) for h in issue.changelog]
            data["changelog"] = {"startAt": 0, "maxResults": len(histories),
                                 "total": len(histories), "histories": histories}
        return data


def wanted_fields(raw: list[str] | None, default: str) -> set[str] | None:
    """Jira's ``fields`` parameter: ``*all``, ``*navigable``, names, ``-name`` exclusions."""
    names = [n.strip() for part in (raw or [default]) for n in part.split(",") if n.strip()]
    if not names:
        return set()
    chosen: set[str] | None = set()
    excluded = {n[1:] for n in names if n.startswith("-")}
    for name in names:
        if name in ("*all", "*navigable"):
            chosen = None
        elif not name.startswith("-") and chosen is not None:
            chosen.add(name)
    if chosen is None:
        return set(NAVIGABLE) - excluded if excluded else None
    return chosen - excluded


# ---------------------------------------------------------------- the app


Handler = Callable[["JiraSim", Request, int], Awaitable[Response]]


class JiraSim:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.world = ctx.world
        self._results: dict[tuple[str, int], list[JiraIssue]] = {}

    def render(self, version: int) -> JiraRenderer:
        return JiraRenderer(self.world, self.ctx.base_urls.get("jira", ""), version)

    @property
    def max_results(self) -> int:
        return int(self.world.settings.get("jira_max_results", 100))

    def authorised(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        tokens = self.world.tokens["jira"]
        if scheme.lower() == "bearer":
            return value in tokens
        if scheme.lower() != "basic":
            return False
        try:
            _, _, secret = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secret in tokens

    def wrap(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not self.authorised(request):
                return Response("Client must be authenticated to access this resource.", 401,
                                {"WWW-Authenticate": 'Basic realm="protected-area"'},
                                media_type="text/plain;charset=UTF-8")
            version = int(request.path_params.get("version", 2))
            try:
                return await handler(self, request, version)
            except JiraError as err:
                return json_response({"errorMessages": err.messages, "errors": err.errors},
                                     err.status)

        return endpoint

    def answer_fault(self, fault: Fault) -> tuple[int, dict[str, str], bytes]:
        if fault.kind == "rate_limit":
            body = {"errorMessages": ["Rate limit exceeded."], "errors": {}}
            return 429, {"Content-Type": "application/json;charset=UTF-8",
                         "Retry-After": str(fault.retry_after),
                         "X-RateLimit-Reason": "jira-burst-based"}, json.dumps(body).encode()
        body = {"errorMessages": ["Internal server error"], "errors": {}}
        return fault.status, {"Content-Type": "application/json;charset=UTF-8"}, \
            json.dumps(body).encode()

    def issue_or_404(self, key: str) -> JiraIssue:
        issue = self.world.jira_issue(key)
        if issue is None:
            raise JiraError(404, ["Issue does not exist or you do not have permission to see it."])
        return issue

    def search(self, text: str) -> list[JiraIssue]:
        """Run a query, cached until the world changes (paging re-reads the same list)."""
        key = (text, self.world.version)
        cached = self._results.get(key)
        if cached is None:
            try:
                cached = jql.parse(text, self.world).run(self.world)
            except jql.JqlError as err:
                raise JiraError(400, [str(err)]) from err
            if len(self._results) > 32:
                self._results.clear()
            self._results[key] = cached
        return cached


async def _params(request: Request) -> dict[str, Any]:
    """GET query parameters or a POST JSON body, with repeated keys kept as lists."""
    if request.method == "POST":
        return await read_body(request)
    params: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        params[key] = values if key == "fields" or len(values) > 1 else values[0]
    return params


def _list(value: Any) -> list[str] | None:
    if value is None:
        return None
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _expand(value: Any) -> set[str]:
    return {e.strip() for part in (_list(value) or []) for e in part.split(",")}


async def server_info(sim: JiraSim, request: Request, version: int) -> Response:
    cloud = sim.world.jira_deployment == "Cloud"
    numbers = [1001, 0, 0] if cloud else [9, 12, 0]
    return json_response({
        "baseUrl": sim.ctx.base_urls.get("jira", ""),
        "version": ".".join(map(str, numbers)) + ("-SNAPSHOT" if cloud else ""),
        "versionNumbers": numbers, "deploymentType": sim.world.jira_deployment,
        "buildNumber": 100282, "buildDate": "2025-01-01T00:00:00.000+0000",
        "serverTime": jira_time(utcnow()), "scmInfo": "0" * 40, "serverTitle": "Jira",
    })


async def myself(sim: JiraSim, request: Request, version: int) -> Response:
    data = sim.render(version).user(sim.world.jira_viewer) or {}
    data["locale"] = "en_US"
    data["groups"] = {"size": 1, "items": []}
    return json_response(data)


async def list_fields(sim: JiraSim, request: Request, version: int) -> Response:
    def system(field_id: str, name: str, kind: str) -> Json:
        return {"id": field_id, "key": field_id, "name": name, "custom": False, "orderable": True,
                "navigable": True, "searchable": True, "clauseNames": [field_id],
                "schema": {"type": kind, "system": field_id}}

    def custom(field_id: str, name: str, kind: str, plugin: str) -> Json:
        number = field_id.split("_")[1]
        return {"id": field_id, "key": field_id, "name": name, "untranslatedName": name,
                "custom": True, "orderable": True, "navigable": True, "searchable": True,
                "clauseNames": [f"cf[{number}]", name],
                "schema": {"type": kind, "custom": plugin, "customId": int(number)}}

    fields = [system(f, f.capitalize(), t) for f, t in (
        ("summary", "string"), ("description", "string"), ("status", "status"),
        ("priority", "priority"), ("assignee", "user"), ("reporter", "user"),
        ("duedate", "date"), ("labels", "array"), ("issuetype", "issuetype"),
        ("parent", "issuelink"), ("subtasks", "array"), ("issuelinks", "array"),
        ("timeoriginalestimate", "number"), ("timeestimate", "number"),
        ("timespent", "number"), ("created", "datetime"), ("updated", "datetime"),
        ("resolutiondate", "datetime"), ("project", "project"), ("comment", "comments-page"),
        ("worklog", "array"))]
    fields.append(custom(ACCEPTANCE_FIELD, "Acceptance Criteria", "string",
                         "com.atlassian.jira.plugin.system.customfieldtypes:textarea"))
    fields.append(custom(TEAM_FIELD, "Team", "team",
                         "com.atlassian.jira.plugin.system.customfieldtypes:atlassian-team"))
    return json_response(fields)


async def search_jql(sim: JiraSim, request: Request, version: int) -> Response:
    """The enhanced search: ``nextPageToken`` / ``isLast``, ids only unless fields asked."""
    params = await _params(request)
    text = str(params.get("jql", ""))
    with sim.world.lock:
        issues = sim.search(text)
        size = min(int(params.get("maxResults", 50) or 50), sim.max_results)
        start = _decode_token(params.get("nextPageToken"), text)
        chunk = issues[start:start + size]
        wanted = wanted_fields(_list(params.get("fields")), "id")
        wanted = None if wanted is None else wanted - {"id"}
        changelog = "changelog" in _expand(params.get("expand"))
        render = sim.render(version)
        body: Json = {"issues": [render.issue(i, wanted, changelog) for i in chunk]}
        if start + size < len(issues):
            body["nextPageToken"] = _encode_token(start + size, text)
        body["isLast"] = start + size >= len(issues)
    return json_response(body)


def _encode_token(offset: int, text: str) -> str:
    raw = json.dumps({"o": offset, "q": hashlib.sha1(text.encode()).hexdigest()[:10]})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_token(token: Any, text: str) -> int:
    if not token:
        return 0
    try:
        padded = str(token) + "=" * (-len(str(token)) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        if data["q"] != hashlib.sha1(text.encode()).hexdigest()[:10]:
            raise ValueError("token from another query")
        return int(data["o"])
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        raise JiraError(400, ["The provided next page token is invalid or expired."]) from err


async def search_classic(sim: JiraSim, request: Request, version: int) -> Response:
    """The older ``/search`` (Jira Server/Data Center): ``startAt``, ``maxResults``, ``total``."""
    if sim.world.jira_deployment == "Cloud":
        raise JiraError(410, ["The requested API has been removed. Please migrate to the "
                              "/rest/api/3/search/jql API."])
    params = await _params(request)
    with sim.world.lock:
        issues = sim.search(str(params.get("jql", "")))
        start = max(0, int(params.get("startAt", 0) or 0))
        size = min(int(params.get("maxResults", 50) or 50), sim.max_results)
        wanted = wanted_fields(_list(params.get("fields")), "*navigable")
        changelog = "changelog" in _expand(params.get("expand"))
        render = sim.render(version)
        body = {"expand": "schema,names", "startAt": start, "maxResults": size,
                "total": len(issues),
                "issues": [render.issue(i, wanted, changelog) for i in issues[start:start + size]]}
    return json_response(body)


async def get_issue(sim: JiraSim, request: Request, version: int) -> Response:
    params = await _params(request)
    with sim.world.lock:
        issue = sim.issue_or_404(request.path_params["key"])
        wanted = wanted_fields(_list(params.get("fields")), "*all")
        changelog = "changelog" in _expand(params.get("expand"))
        return json_response(sim.render(version).issue(issue, wanted, changelog))


async def put_issue(sim: JiraSim, request: Request, version: int) -> Response:
    body = await read_body(request)
    with sim.world.lock:
        issue = sim.issue_or_404(request.path_params["key"])
        changes = _field_changes(body.get("fields") or {}, body.get("update") or {})
        try:
            sim.world.edit_jira_issue(issue.id, None, **changes)
        except WorldError as err:
            raise JiraError(400, [], {"fields": str(err)}) from err
        sim.ctx.writes.record("jira", "issue_edit", issue.key, body)
    return Response(None, 204)


def _field_changes(fields: Json, update: Json) -> Json:
    changes: Json = {}
    simple = {"summary": "summary", "duedate": "duedate", "labels": "labels",
              ACCEPTANCE_FIELD: "acceptance_criteria"}
    for name, target in simple.items():
        if name in fields:
            changes[target] = fields[name]
    if "description" in fields:
        changes["description"] = adf_text(fields["description"]) if fields[
            "description"] is not None else None
    if "priority" in fields:
        changes["priority"] = (fields["priority"] or {}).get("name")
    if "assignee" in fields:
        changes["assignee"] = (fields["assignee"] or {}).get("accountId")
    for op in update.get("labels", []):
        labels = list(changes.get("labels", []))
        if "add" in op:
            labels.append(op["add"])
        changes["labels"] = labels
    return changes


async def put_assignee(sim: JiraSim, request: Request, version: int) -> Response:
    body = await read_body(request)
    with sim.world.lock:
        issue = sim.issue_or_404(request.path_params["key"])
        sim.world.reassign_jira_issue(issue.id, body.get("accountId"))
        sim.ctx.writes.record("jira", "assign", issue.key, body)
    return Response(None, 204)


async def list_comments(sim: JiraSim, request: Request, version: int) -> Response:
    params = await _params(request)
    with sim.world.lock:
        issue = sim.issue_or_404(request.path_params["key"])
        start = int(params.get("startAt", 0) or 0)
        size = min(int(params.get("maxResults", 5000) or 5000), 5000)
        props = "properties" in _expand(params.get("expand"))
        render = sim.render(version)
        chunk = issue.comments[start:start + size]
        return json_response({"comments": [render.comment(issue, c, props) for c in chunk],
                              "maxResults": size, "total": len(issue.comments),
                              "startAt": start})


def _comment_or_404(issue: JiraIssue, comment_id: str) -> JiraComment:
    for comment in issue.comments:
        if comment.id == comment_id:
            return comment
    raise JiraError(404, ["Can not find a comment for the id: " + comment_id + "."])


async def get_comment(sim: JiraSim, request: Request, version: int) -> Response:
    params = await _params(request)
    with sim.world.lock:
        issue = sim.issue_or_404(request.path_params["key"])
        comment = _comment_or_404(issue, request.path_params["comment_id"])
        props = "properties" in _expand(params.get("expand"))
        return json_response(sim.render(version).comment(issue, comment, props))


async def add_comment(sim: JiraSim, request: Request, version: int) -> Response:
    body = await read_body(request)
    text = adf_text(body.get("body"))
    if not text:
        raise JiraError(400, [], {"comment": "Comment body can not be empty!"})
    properties = body.get("properties") or []
    if not isinstance(properties, list) or not all(
            isinstance(p, dict) and "key" in p for p in properties):
        raise JiraError(400, ["Comment properties must be a list of {key, value}."])
    with sim.world.lock:
        issue = sim.issue_or_404(request.path_params["key"])
        comment = sim.world.add_jira_comment(issue.id, text, None, properties)
        sim.ctx.writes.record("jira", "comment", issue.key, body)
        return json_response(sim.render(version).comment(issue, comment, bool(properties)), 201)


async def update_comment(sim: JiraSim, request: Request, version: int) -> Response:
    body = await read_body(request)
    with sim.world.lock:
        issue = sim.issue_or_404(request.path_params["key"])
        comment = _comment_or_404(issue, request.path_params["comment_id"])
        sim.world.edit_jira_comment(issue.id, comment.id, adf_text(body.get("body")))
        sim.ctx.writes.record("jira", "comment_edit", issue.key, body)
        return json_response(sim.render(version).comment(issue, comment))


def _transition_id(status: str) -> str:
    return str(11 + 10 * list(JIRA_STATUSES).index(status))


async def list_transitions(sim: JiraSim, request: Request, version: int) -> Response:
    with sim.world.lock:
        issue = sim.issue_or_404(request.path_params["key"])
        render = sim.render(version)
        transitions = [{"id": _transition_id(name), "name": name, "to": render.status(name),
                        "hasScreen": False, "isGlobal": True, "isInitial": False,
                        "isAvailable": True, "isConditional": False, "isLooped": False}
                       for name in JIRA_STATUSES if name != issue.status]
        return json_response({"expand": "transitions", "transitions": transitions})


async def do_transition(sim: JiraSim, request: Request, version: int) -> Response:
    body = await read_body(request)
    wanted = str((body.get("transition") or {}).get("id", ""))
    targets = {_transition_id(name): name for name in JIRA_STATUSES}
    with sim.world.lock:
        issue = sim.issue_or_404(request.path_params["key"])
        if wanted not in targets or targets[wanted] == issue.status:
            raise JiraError(400, [f"Transition id '{wanted}' is not valid for this issue."])
        sim.world.transition_jira_issue(issue.id, targets[wanted])
        sim.ctx.writes.record("jira", "transition", issue.key, body)
    return Response(None, 204)


async def list_worklogs(sim: JiraSim, request: Request, version: int) -> Response:
    with sim.world.lock:
        issue = sim.issue_or_404(request.path_params["key"])
        render = sim.render(version)
        worklogs = [render.worklog(issue, w) for w in issue.worklogs]
        return json_response({"startAt": 0, "maxResults": len(worklogs), "total": len(worklogs),
                              "worklogs": worklogs})


async def add_worklog(sim: JiraSim, request: Request, version: int) -> Response:
    from syncd.sandbox.loader import seconds

    body = await read_body(request)
    try:
        spent = int(body.get("timeSpentSeconds") or seconds(body.get("timeSpent")) or 0)
    except WorldError as err:
        raise JiraError(400, [], {"timeLogged": "Invalid time duration entered."}) from err
    if spent <= 0:
        raise JiraError(400, [], {"timeLogged": "You must indicate the time spent working."})
    with sim.world.lock:
        issue = sim.issue_or_404(request.path_params["key"])
        worklog = sim.world.add_jira_worklog(issue.id, spent, None, None,
                                             adf_text(body.get("comment")))
        sim.ctx.writes.record("jira", "worklog", issue.key, body)
        return json_response(sim.render(version).worklog(issue, worklog), 201)


def create_app(ctx: Context) -> ASGIApp:
    sim = JiraSim(ctx)
    api = "/rest/api/{version:int}"
    issue = api + "/issue/{key}"
    table: list[tuple[str, Handler, list[str]]] = [
        (api + "/serverInfo", server_info, ["GET"]),
        (api + "/myself", myself, ["GET"]),
        (api + "/field", list_fields, ["GET"]),
        (api + "/search/jql", search_jql, ["GET", "POST"]),
        (api + "/search", search_classic, ["GET", "POST"]),
        (issue, get_issue, ["GET"]),
        (issue, put_issue, ["PUT"]),
        (issue + "/assignee", put_assignee, ["PUT"]),
        (issue + "/comment", list_comments, ["GET"]),
        (issue + "/comment", add_comment, ["POST"]),
        (issue + "/comment/{comment_id}", get_comment, ["GET"]),
        (issue + "/comment/{comment_id}", update_comment, ["PUT"]),
        (issue + "/transitions", list_transitions, ["GET"]),
        (issue + "/transitions", do_transition, ["POST"]),
        (issue + "/worklog", list_worklogs, ["GET"]),
        (issue + "/worklog", add_worklog, ["POST"]),
    ]
    routes = [Route(path, sim.wrap(handler), methods=methods) for path, handler, methods in table]
    return build_app("jira", routes, ctx, sim.answer_fault)
