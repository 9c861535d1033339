"""GitHub REST simulator: the endpoints PyGithub uses for issues, comments and events."""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from syncd.sandbox.clock import gh_time, http_date, parse_when
from syncd.sandbox.context import Context, build_app, json_response, read_body
from syncd.sandbox.faults import Fault
from syncd.sandbox.world import GhComment, GhEvent, GhIssue, GhRepo, Json, World, WorldError

DOCS = "https://docs.github.com/rest"
REACTIONS = ("+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes")


# ---------------------------------------------------------------- rendering


@dataclass
class Renderer:
    """Builds GitHub's JSON objects; ``api`` is the simulator's base URL."""

    world: World
    api: str
    web: str = "https://github.com"

    def user(self, login: str | None) -> Json | None:
        if login is None:
            return None
        user = self.world.ensure_gh_user(login)
        url = f"{self.api}/users/{login}"
        return {
            "login": login, "id": user.id, "node_id": _node("MDQ6VXNlcj", user.id),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}?v=4",
            "gravatar_id": "", "url": url, "html_url": f"{self.web}/{login}",
            "followers_url": f"{url}/followers",
            "following_url": f"{url}/following{{/other_user}}",
            "gists_url": f"{url}/gists{{/gist_id}}",
            "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{url}/subscriptions", "organizations_url": f"{url}/orgs",
            "repos_url": f"{url}/repos", "events_url": f"{url}/events{{/privacy}}",
            "received_events_url": f"{url}/received_events", "type": user.type,
            "user_view_type": "public", "site_admin": False,
        }

    def label(self, repo: GhRepo, name: str) -> Json:
        return {"id": repo.label_ids.get(name, 0), "node_id": _node("LA_kwDO", repo.label_ids.get(
            name, 0)), "url": f"{self.api}/repos/{repo.full_name}/labels/{name}", "name": name,
            "color": repo.labels.get(name, "ededed"), "default": False, "description": None}

    def milestone(self, repo: GhRepo, number: int | None) -> Json | None:
        ms = repo.milestones.get(number) if number is not None else None
        if ms is None:
            return None
        issues = [i for i in repo.issues.values() if i.milestone == number]
        url = f"{self.api}/repos/{repo.full_name}/milestones/{number}"
        return {
            "url": url, "html_url": f"{self.web}/{repo.full_name}/milestone/{number}",
            "labels_url": f"{url}/labels", "id": ms.id, "node_id": _node("MI_kwDO", ms.id),
            "number": number, "title": ms.title, "description": ms.description,
            "creator": self.user(ms.creator), "open_issues": sum(i.state == "open" for i in issues),
            "closed_issues": sum(i.state == "closed" for i in issues), "state": ms.state,
            "created_at": gh_time(ms.created_at), "updated_at": gh_time(ms.updated_at),
            "due_on": gh_time(ms.due_on), "closed_at": gh_time(ms.closed_at),
        }

    def repo(self, repo: GhRepo) -> Json:
        url = f"{self.api}/repos/{repo.full_name}"
        open_count = sum(i.state == "open" for i in repo.issues.values())  # once: every webhook
        return {
            "id": repo.id, "node_id": _node("R_kgDO", repo.id), "name": repo.name,
            "full_name": repo.full_name, "private": repo.private,
            "owner": self.user(repo.owner), "html_url": f"{self.web}/{repo.full_name}",
            "description": repo.description, "fork": False, "url": url,
            "issues_url": f"{url}/issues{{/number}}",
            "issue_comment_url": f"{url}/issues/comments{{/number}}",
            "issue_events_url": f"{url}/issues/events{{/number}}",
            "labels_url": f"{url}/labels{{/name}}", "milestones_url": f"{url}/milestones{{/number}}",
            "created_at": gh_time(repo.created_at), "updated_at": gh_time(self.world.now),
            "pushed_at": gh_time(self.world.now), "has_issues": True, "archived": False,
            "disabled": False, "visibility": "private" if repo.private else "public",
            "open_issues_count": open_count, "open_issues": open_count,
            "default_branch": "main",
            "permissions": {"admin": False, "maintain": False, "push": True, "triage": True,
                            "pull": True},
        }

    def reactions(self, url: str) -> Json:
        return {"url": f"{url}/reactions", "total_count": 0, **dict.fromkeys(REACTIONS, 0)}

    def issue(self, issue: GhIssue) -> Json:
        repo = self.world.repo(issue.repo)
        assert repo is not None
        repo_url = f"{self.api}/repos/{repo.full_name}"
        url = f"{repo_url}/issues/{issue.number}"
        kind = "pull" if issue.pull_request is not None else "issues"
        data: Json = {
            "url": url, "repository_url": repo_url,
            "labels_url": f"{url}/labels{{/name}}", "comments_url": f"{url}/comments",
            "events_url": f"{url}/events",
            "html_url": f"{self.web}/{repo.full_name}/{kind}/{issue.number}",
            "id": issue.id, "node_id": _node("I_kwDO", issue.id), "number": issue.number,
            "title": issue.title, "user": self.user(issue.user),
            "labels": [self.label(repo, name) for name in issue.labels],
            "state": issue.state, "locked": issue.locked,
            "assignee": self.user(issue.assignees[0]) if issue.assignees else None,
            "assignees": [self.user(a) for a in issue.assignees],
            "milestone": self.milestone(repo, issue.milestone),
            "comments": len(issue.comments),
            "created_at": gh_time(issue.created_at), "updated_at": gh_time(issue.updated_at),
            "closed_at": gh_time(issue.closed_at), "author_association": "MEMBER",
            "active_lock_reason": None,
            "sub_issues_summary": self._sub_issues_summary(issue),
            "issue_dependencies_summary": self._dependencies_summary(issue),
            "body": issue.body, "closed_by": self.user(issue.closed_by),
            "reactions": self.reactions(url), "timeline_url": f"{url}/timeline",
            "performed_via_github_app": None, "state_reason": issue.state_reason,
        }
        if issue.pull_request is not None:
            pulls = f"{repo_url}/pulls/{issue.number}"
            web = f"{self.web}/{repo.full_name}/pull/{issue.number}"
            data["draft"] = False
            data["pull_request"] = {"url": pulls, "html_url": web, "diff_url": f"{web}.diff",
                                    "patch_url": f"{web}.patch",
                                    "merged_at": gh_time(issue.pull_request.get("merged_at"))}
        return data

    def _sub_issues_summary(self, issue: GhIssue) -> Json:
        subs = [self.world.gh_issues[i] for i in issue.sub_issue_ids if i in self.world.gh_issues]
        done = sum(s.state == "closed" for s in subs)
        percent = (100 * done) // len(subs) if subs else 0
        return {"total": len(subs), "completed": done, "percent_completed": percent}

    def _dependencies_summary(self, issue: GhIssue) -> Json:
        blockers = [self.world.gh_issues[i] for i in issue.blocked_by_ids
                    if i in self.world.gh_issues]
        blocking = self.world.gh_blocking(issue)
        return {"blocked_by": sum(b.state == "open" for b in blockers),
                "total_blocked_by": len(blockers),
                "blocking": sum(b.state == "open" for b in blocking),
                "total_blocking": len(blocking)}

    def comment(self, comment: GhComment) -> Json:
        issue = self.world.gh_issues.get(comment.issue_id)
        repo_name = issue.repo if issue else "unknown/unknown"
        number = issue.number if issue else 0
        url = f"{self.api}/repos/{repo_name}/issues/comments/{comment.id}"
        return {
            "url": url,
            "html_url": f"{self.web}/{repo_name}/issues/{number}#issuecomment-{comment.id}",
            "issue_url": f"{self.api}/repos/{repo_name}/issues/{number}",
            "id": comment.id, "node_id": _node("IC_kwDO", comment.id),
            "user": self.user(comment.user), "created_at": gh_time(comment.created_at),
            "updated_at": gh_time(comment.updated_at), "body": comment.body,
            "author_association": "MEMBER", "reactions": self.reactions(url),
            "performed_via_github_app": None,
        }

    def event(self, event: GhEvent, with_issue: bool = False) -> Json:
        issue = self.world.gh_issues.get(event.issue_id)
        repo_name = issue.repo if issue else "unknown/unknown"
        data: Json = {
            "id": event.id, "node_id": _node("IE_lADO", event.id),
            "url": f"{self.api}/repos/{repo_name}/issues/events/{event.id}",
            "actor": self.user(event.actor), "event": event.event, "commit_id": None,
            "commit_url": None, "created_at": gh_time(event.created_at),
            "performed_via_github_app": None,
        }
        data.update(self._event_detail(event))
        if with_issue and issue is not None:
            data["issue"] = self.issue(issue)
        return data

    def _event_detail(self, event: GhEvent) -> Json:
        detail = event.detail
        if event.event in ("assigned", "unassigned") and "assignee" in detail:
            return {"assignee": self.user(detail["assignee"]),
                    "assigner": self.user(event.actor)}
        if event.event in ("labeled", "unlabeled") and "label" in detail:
            return {"label": {"name": detail["label"], "color": "ededed"}}
        if event.event in ("milestoned", "demilestoned") and "milestone" in detail:
            return {"milestone": {"title": detail["milestone"]}}
        if event.event == "renamed" and "from" in detail:
            return {"rename": {"from": detail["from"], "to": detail.get("to", "")}}
        if event.event == "closed":
            return {"state_reason": detail.get("state_reason")}
        return {}

    def timeline_comment(self, comment: GhComment) -> Json:
        data = self.comment(comment)
        data["event"] = "commented"
        data["actor"] = data["user"]
        return data


def _node(prefix: str, number: int) -> str:
    return prefix + base64.b64encode(str(number).encode()).decode().rstrip("=")


# ---------------------------------------------------------------- rate limit


@dataclass
class RateLimit:
    """The ``core`` quota per token: counts down, refills an hour after first use."""

    limit: int
    used: dict[str, int] = field(default_factory=dict)
    reset: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _window(self, token: str) -> None:
        now = int(time.time())
        if self.reset.get(token, 0) <= now:
            self.reset[token] = now + 3600
            self.used[token] = 0

    def exhausted(self, token: str) -> bool:
        with self.lock:
            self._window(token)
            return self.used[token] >= self.limit

    def spend(self, token: str) -> None:
        with self.lock:
            self._window(token)
            self.used[token] += 1

    def set_remaining(self, token: str, remaining: int) -> None:
        with self.lock:
            self._window(token)
            self.used[token] = self.limit - remaining

    def headers(self, token: str) -> dict[str, str]:
        with self.lock:
            self._window(token)
            used = self.used[token]
            return {"X-RateLimit-Limit": str(self.limit),
                    "X-RateLimit-Remaining": str(max(0, self.limit - used)),
                    "X-RateLimit-Reset": str(self.reset[token]),
                    "X-RateLimit-Used": str(used), "X-RateLimit-Resource": "core"}

    def snapshot(self, token: str) -> Json:
        with self.lock:
            self._window(token)
            used = self.used[token]
            return {"limit": self.limit, "used": used, "remaining": max(0, self.limit - used),
                    "reset": self.reset[token]}


# ---------------------------------------------------------------- the app


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 extra: Json | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.headers, self.extra = headers or {}, extra or {}


@dataclass
class Reply:
    data: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None


Handler = Callable[["GitHubSim", Request], Awaitable[Reply]]
_LIST_CACHE_SIZE = 64


class GitHubSim:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.world = ctx.world
        self.rate = RateLimit(self.world.gh_rate_limit)
        self._lists: dict[tuple[Any, ...], list[GhIssue]] = {}

    @property
    def render(self) -> Renderer:
        web = str(self.world.settings.get("github_web_url", "https://github.com"))
        return Renderer(self.world, self.ctx.base_urls.get("github", ""), web)

    # ---- plumbing

    def token(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("token", "bearer") and value in self.world.tokens["github"]:
            return value
        return None

    def wrap(self, handler: Handler, write: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            token = self.token(request)
            if token is None:
                return json_response({"message": "Bad credentials", "documentation_url": DOCS,
                                      "status": "401"}, 401)
            if self.rate.exhausted(token):
                return self._rate_limited(token)
            try:
                reply = await handler(self, request)
            except HttpError as err:
                self.rate.spend(token)
                body = {"message": err.message, **err.extra, "documentation_url": DOCS,
                        "status": str(err.status)}
                return json_response(body, err.status, {**self.rate.headers(token),
                                                        **err.headers})
            return self._respond(request, token, reply)

        return endpoint

    def _rate_limited(self, token: str) -> Response:
        message = ("API rate limit exceeded for user ID 1. If you reach out to GitHub Support "
                   "for help, please include the request ID.")
        body = {"message": message,
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                "status": "403"}
        return json_response(body, 403, self.rate.headers(token))

    def _respond(self, request: Request, token: str, reply: Reply) -> Response:
        body = json.dumps(reply.data, separators=(",", ":")).encode()
        etag = 'W/"' + hashlib.sha256(body).hexdigest() + '"'
        headers = {"Cache-Control": "private, max-age=60, s-maxage=60",
                   "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP, Accept-Encoding",
                   "X-GitHub-Media-Type": "github.v3; format=json",
                   "x-github-api-version-selected": "2022-11-28",
                   "X-GitHub-Request-Id": hashlib.md5(body).hexdigest()[:16].upper()}
        if request.method == "GET" and reply.status == 200:
            headers["ETag"] = etag
            if reply.last_modified is not None:
                headers["Last-Modified"] = http_date(reply.last_modified)
            if etag in _etags(request.headers.get("if-none-match", "")):
                # A conditional hit costs no quota, as on GitHub.
                return Response(None, 304, {**headers, **self.rate.headers(token)})
        self.rate.spend(token)
        headers.update(self.rate.headers(token))
        headers.update(reply.headers)
        if reply.data is None:
            return Response(None, reply.status, headers)
        return Response(body, reply.status, headers, media_type="application/json; charset=utf-8")

    def answer_fault(self, fault: Fault) -> tuple[int, dict[str, str], bytes]:
        if fault.kind == "rate_limit":
            body = {"message": "You have exceeded a secondary rate limit. Please wait a few "
                               "minutes before you try again.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
                    "status": "429"}
            return 429, {"Content-Type": "application/json; charset=utf-8",
                         "Retry-After": str(fault.retry_after)}, json.dumps(body).encode()
        if fault.status == 503:
            html = b"<html><body><h1>503 Service Unavailable</h1>No server is available.</body></html>"
            return 503, {"Content-Type": "text/html"}, html
        body = {"message": "Server Error" if fault.status == 500 else "Bad Gateway"}
        return fault.status, {"Content-Type": "application/json; charset=utf-8"}, \
            json.dumps(body).encode()

    # ---- lookups

    def repo_or_404(self, request: Request) -> GhRepo:
        name = f"{request.path_params['owner']}/{request.path_params['repo']}"
        repo = self.world.repo(name)
        if repo is None:
            raise HttpError(404, "Not Found")
        return repo

    def issue_or_404(self, request: Request) -> GhIssue:
        repo = self.repo_or_404(request)
        number = int(request.path_params["number"])
        issue = repo.issues.get(number)
        if issue is not None:
            return issue
        moved = self.world.gh_moved_issue(repo.full_name, number)
        if moved is not None:
            rest = request.url.path.split(f"/issues/{number}", 1)[1]
            target = f"{self.render.api}/repos/{moved.repo}/issues/{moved.number}{rest}"
            raise HttpError(301, "Moved Permanently", {"Location": target}, {"url": target})
        raise HttpError(404, "Not Found")

    def page(self, request: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        """Slice one page and build the ``Link`` header exactly as GitHub writes it."""
        params = dict(request.query_params)
        per_page = _int(params.get("per_page"), 30, 1, 100)
        page = _int(params.get("page"), 1, 1, 10**9)
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        base = f"{self.render.api}{request.url.path}"

        def link(number: int, rel: str) -> str:
            query = urlencode(sorted({**params, "page": str(number)}.items()))
            return f'<{base}?{query}>; rel="{rel}"'

        rels = []
        if page < last:
            rels += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            rels += [link(1, "first"), link(min(page - 1, last), "prev")]
        return chunk, ({"Link": ", ".join(rels)} if rels else {})

    def issue_list(self, repo: GhRepo, request: Request) -> list[GhIssue]:
        q = request.query_params
        state = q.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise HttpError(422, "Validation Failed")
        sort, direction = q.get("sort", "created"), q.get("direction", "desc")
        key = (repo.full_name, state, sort, direction, q.get("since"), q.get("labels"),
               q.get("assignee"), q.get("milestone"), q.get("creator"), self.world.version)
        cached = self._lists.get(key)
        if cached is None:
            items = self.world.gh_sorted(repo.full_name, state, sort, direction)
            cached = self._filter(items, q.get("since"), sort, direction, dict(q))
            if len(self._lists) >= _LIST_CACHE_SIZE:
                self._lists.pop(next(iter(self._lists)))
            self._lists[key] = cached
        return cached

    def _filter(self, items: list[GhIssue], since: str | None, sort: str, direction: str,
                q: dict[str, str]) -> list[GhIssue]:
        if since:
            moment = _since(since)
            if sort == "updated":
                # The view is sorted by updated_at: cut it with a binary search.
                stamps = [i.updated_at for i in items]
                if direction == "asc":
                    items = items[bisect.bisect_left(stamps, moment):]
                else:
                    stamps.reverse()
                    items = items[: len(items) - bisect.bisect_left(stamps, moment)]
            else:
                items = [i for i in items if i.updated_at >= moment]
        if q.get("labels"):
            wanted = set(q["labels"].split(","))
            items = [i for i in items if wanted <= set(i.labels)]
        if "assignee" in q:
            items = _match_people(items, q["assignee"])
        if "milestone" in q:
            items = _match_milestone(items, q["milestone"])
        if "creator" in q:
            items = [i for i in items if i.user == q["creator"]]
        return items


def _etags(header: str) -> set[str]:
    return {tag.strip() for tag in header.split(",") if tag.strip()}


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return min(max(number, low), high)


def _since(value: str) -> datetime:
    moment = parse_when(value, datetime.now())
    if moment is None:
        raise HttpError(422, "Validation Failed")
    return moment


def _match_people(items: list[GhIssue], who: str) -> list[GhIssue]:
    if who == "none":
        return [i for i in items if not i.assignees]
    if who == "*":
        return [i for i in items if i.assignees]
    return [i for i in items if who in i.assignees]


def _match_milestone(items: list[GhIssue], value: str) -> list[GhIssue]:
    if value == "none":
        return [i for i in items if i.milestone is None]
    if value == "*":
        return [i for i in items if i.milestone is not None]
    return [i for i in items if str(i.milestone) == value]


# ---------------------------------------------------------------- handlers


async def get_user(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        data = sim.render.user(sim.world.gh_viewer) or {}
        user = sim.world.gh_users[sim.world.gh_viewer]
        data.update({"name": user.name or user.login, "email": user.email, "company": None,
                     "created_at": "2020-01-01T00:00:00Z", "updated_at": gh_time(sim.world.now)})
        return Reply(data)


async def get_named_user(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        login = request.path_params["login"]
        if login not in sim.world.gh_users:
            raise HttpError(404, "Not Found")
        return Reply(sim.render.user(login))


async def get_rate_limit(sim: GitHubSim, request: Request) -> Reply:
    token = sim.token(request) or ""
    core = sim.rate.snapshot(token)
    reset = core["reset"]
    search = {"limit": 30, "used": 0, "remaining": 30, "reset": reset}
    graphql = {"limit": 5000, "used": 0, "remaining": 5000, "reset": reset}
    return Reply({"resources": {"core": core, "search": search, "graphql": graphql},
                  "rate": core})


async def get_repo(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        return Reply(sim.render.repo(sim.repo_or_404(request)))


async def list_issues(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        repo = sim.repo_or_404(request)
        chunk, headers = sim.page(request, sim.issue_list(repo, request))
        render = sim.render
        return Reply([render.issue(i) for i in chunk], headers=headers)


async def get_issue(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        issue = sim.issue_or_404(request)
        return Reply(sim.render.issue(issue), last_modified=issue.updated_at)


async def patch_issue(sim: GitHubSim, request: Request) -> Reply:
    body = await read_body(request)
    with sim.world.lock:
        issue = sim.issue_or_404(request)
        fields: Json = {}
        for name in ("title", "body", "state", "state_reason", "assignees", "assignee",
                     "milestone"):
            if name in body:
                fields[name] = body[name]
        if "labels" in body:
            fields["labels"] = [x["name"] if isinstance(x, dict) else x for x in body["labels"]]
        if fields.get("state") not in (None, "open", "closed"):
            raise HttpError(422, "Validation Failed")
        try:
            sim.world.edit_gh_issue(issue.repo, issue.number, sim.world.gh_viewer, **fields)
        except WorldError as err:
            raise HttpError(422, f"Validation Failed: {err}") from err
        sim.ctx.writes.record("github", "issue_edit", f"{issue.repo}#{issue.number}", body)
        return Reply(sim.render.issue(issue))


async def list_issue_comments(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        issue = sim.issue_or_404(request)
        items = list(issue.comments)
        since = request.query_params.get("since")
        if since:
            moment = _since(since)
            items = [c for c in items if c.updated_at >= moment]
        chunk, headers = sim.page(request, items)
        return Reply([sim.render.comment(c) for c in chunk], headers=headers)


async def create_comment(sim: GitHubSim, request: Request) -> Reply:
    body = await read_body(request)
    if not isinstance(body.get("body"), str):
        raise HttpError(422, "Invalid request.\n\n\"body\" wasn't supplied.")
    with sim.world.lock:
        issue = sim.issue_or_404(request)
        comment = sim.world.add_gh_comment(issue.repo, issue.number, body["body"],
                                           sim.world.gh_viewer)
        sim.ctx.writes.record("github", "issue_comment", f"{issue.repo}#{issue.number}", body)
        data = sim.render.comment(comment)
        return Reply(data, 201, {"Location": data["url"]})


async def list_repo_comments(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        repo = sim.repo_or_404(request)
        q = request.query_params
        items = list(sim.world.gh_repo_comments(repo.full_name))
        if q.get("since"):
            moment = _since(q["since"])
            items = [c for c in items if c.updated_at >= moment]
        sort = q.get("sort", "created")
        key = (lambda c: (c.updated_at, c.id)) if sort == "updated" else (
            lambda c: (c.created_at, c.id))
        items.sort(key=key, reverse=q.get("direction", "asc") == "desc")
        chunk, headers = sim.page(request, items)
        return Reply([sim.render.comment(c) for c in chunk], headers=headers)


def _comment_or_404(sim: GitHubSim, request: Request) -> GhComment:
    repo = sim.repo_or_404(request)
    comment = sim.world.gh_comments.get(int(request.path_params["comment_id"]))
    issue = sim.world.gh_issues.get(comment.issue_id) if comment else None
    if comment is None or issue is None or issue.repo != repo.full_name:
        raise HttpError(404, "Not Found")
    return comment


async def get_comment(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        return Reply(sim.render.comment(_comment_or_404(sim, request)))


async def patch_comment(sim: GitHubSim, request: Request) -> Reply:
    body = await read_body(request)
    with sim.world.lock:
        comment = _comment_or_404(sim, request)
        if not isinstance(body.get("body"), str):
            raise HttpError(422, "Validation Failed")
        sim.world.edit_gh_comment(comment.id, body["body"])
        sim.ctx.writes.record("github", "comment_edit", str(comment.id), body)
        return Reply(sim.render.comment(comment))


async def delete_comment(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        comment = _comment_or_404(sim, request)
        sim.world.delete_gh_comment(comment.id)
        sim.ctx.writes.record("github", "comment_delete", str(comment.id), {})
        return Reply(None, 204)


async def list_issue_events(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        issue = sim.issue_or_404(request)
        chunk, headers = sim.page(request, list(issue.events))
        return Reply([sim.render.event(e) for e in chunk], headers=headers)


async def list_repo_events(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        repo = sim.repo_or_404(request)
        events = sorted((e for i in repo.issues.values() for e in i.events),
                        key=lambda e: (e.created_at, e.id), reverse=True)
        chunk, headers = sim.page(request, events)
        return Reply([sim.render.event(e, with_issue=True) for e in chunk], headers=headers)


async def list_timeline(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        issue = sim.issue_or_404(request)
        render = sim.render
        rows: list[tuple[datetime, int, Json]] = [
            (e.created_at, e.id, render.event(e)) for e in issue.events]
        rows += [(c.created_at, c.id, render.timeline_comment(c)) for c in issue.comments]
        rows.sort(key=lambda r: (r[0], r[1]))
        chunk, headers = sim.page(request, [r[2] for r in rows])
        return Reply(chunk, headers=headers)


async def list_sub_issues(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        issue = sim.issue_or_404(request)
        subs = [sim.world.gh_issues[i] for i in issue.sub_issue_ids if i in sim.world.gh_issues]
        chunk, headers = sim.page(request, subs)
        return Reply([sim.render.issue(s) for s in chunk], headers=headers)


async def add_sub_issue(sim: GitHubSim, request: Request) -> Reply:
    body = await read_body(request)
    with sim.world.lock:
        issue = sim.issue_or_404(request)
        try:
            sim.world.add_gh_sub_issue(issue.repo, issue.number, int(body["sub_issue_id"]))
        except (KeyError, ValueError, WorldError) as err:
            raise HttpError(422, "Validation Failed") from err
        sim.ctx.writes.record("github", "sub_issue_add", f"{issue.repo}#{issue.number}", body)
        data = sim.render.issue(issue)
        return Reply(data, 201, {"Location": data["url"]})


async def remove_sub_issue(sim: GitHubSim, request: Request) -> Reply:
    body = await read_body(request)
    with sim.world.lock:
        issue = sim.issue_or_404(request)
        try:
            sim.world.remove_gh_sub_issue(issue.repo, issue.number, int(body["sub_issue_id"]))
        except (KeyError, ValueError, WorldError) as err:
            raise HttpError(404, "Not Found") from err
        sim.ctx.writes.record("github", "sub_issue_remove", f"{issue.repo}#{issue.number}", body)
        return Reply(sim.render.issue(issue))


async def list_blocked_by(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        issue = sim.issue_or_404(request)
        blockers = [sim.world.gh_issues[i] for i in issue.blocked_by_ids
                    if i in sim.world.gh_issues]
        chunk, headers = sim.page(request, blockers)
        return Reply([sim.render.issue(b) for b in chunk], headers=headers)


async def add_blocked_by(sim: GitHubSim, request: Request) -> Reply:
    body = await read_body(request)
    with sim.world.lock:
        issue = sim.issue_or_404(request)
        try:
            sim.world.add_gh_blocked_by(issue.repo, issue.number, int(body["issue_id"]))
        except (KeyError, ValueError, WorldError) as err:
            raise HttpError(422, "Validation Failed") from err
        sim.ctx.writes.record("github", "blocked_by_add", f"{issue.repo}#{issue.number}", body)
        data = sim.render.issue(issue)
        return Reply(data, 201, {"Location": data["url"]})


async def remove_blocked_by(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        issue = sim.issue_or_404(request)
        blocker = int(request.path_params["issue_id"])
        try:
            sim.world.remove_gh_blocked_by(issue.repo, issue.number, blocker)
        except WorldError as err:
            raise HttpError(404, "Not Found") from err
        sim.ctx.writes.record("github", "blocked_by_remove", f"{issue.repo}#{issue.number}",
                              {"issue_id": blocker})
        return Reply(sim.render.issue(issue))


async def get_milestone(sim: GitHubSim, request: Request) -> Reply:
    with sim.world.lock:
        repo = sim.repo_or_404(request)
        data = sim.render.milestone(repo, int(request.path_params["number"]))
        if data is None:
            raise HttpError(404, "Not Found")
        return Reply(data)


def create_app(ctx: Context) -> ASGIApp:
    sim = GitHubSim(ctx)
    ctx.sims["github"] = sim
    issue = "/repos/{owner}/{repo}/issues/{number:int}"
    table: list[tuple[str, Handler, list[str]]] = [
        ("/user", get_user, ["GET"]),
        ("/users/{login}", get_named_user, ["GET"]),
        ("/rate_limit", get_rate_limit, ["GET"]),
        ("/repos/{owner}/{repo}", get_repo, ["GET"]),
        ("/repos/{owner}/{repo}/issues", list_issues, ["GET"]),
        ("/repos/{owner}/{repo}/issues/comments", list_repo_comments, ["GET"]),
        ("/repos/{owner}/{repo}/issues/comments/{comment_id:int}", get_comment, ["GET"]),
        ("/repos/{owner}/{repo}/issues/comments/{comment_id:int}", patch_comment, ["PATCH"]),
        ("/repos/{owner}/{repo}/issues/comments/{comment_id:int}", delete_comment, ["DELETE"]),
        ("/repos/{owner}/{repo}/issues/events", list_repo_events, ["GET"]),
        ("/repos/{owner}/{repo}/milestones/{number:int}", get_milestone, ["GET"]),
        (issue, get_issue, ["GET"]),
        (issue, patch_issue, ["PATCH"]),
        (issue + "/comments", list_issue_comments, ["GET"]),
        (issue + "/comments", create_comment, ["POST"]),
        (issue + "/events", list_issue_events, ["GET"]),
        (issue + "/timeline", list_timeline, ["GET"]),
        (issue + "/sub_issues", list_sub_issues, ["GET"]),
        (issue + "/sub_issues", add_sub_issue, ["POST"]),
        (issue + "/sub_issue", remove_sub_issue, ["DELETE"]),
        (issue + "/dependencies/blocked_by", list_blocked_by, ["GET"]),
        (issue + "/dependencies/blocked_by", add_blocked_by, ["POST"]),
        (issue + "/dependencies/blocked_by/{issue_id:int}", remove_blocked_by, ["DELETE"]),
    ]
    routes = [Route(path, sim.wrap(handler), methods=methods) for path, handler, methods in table]
    return build_app("github", routes, ctx, sim.answer_fault)
