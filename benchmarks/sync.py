"""Sync benchmark: a first sync from the sandbox, then an incremental one with 1% changed.

    python benchmarks/sync.py [--github 20000] [--jira 20000] [--sources gh,ops]
    python benchmarks/sync.py --sources mail --emails 20000
    python benchmarks/sync.py --sources chat --slack 20000


Each phase runs `syncd reconcile` in a subprocess (so its peak RSS is its own)
against the sandbox served by this process, whose request log counts what the
sync asked for. Printed per phase and source: requests made against the minimum
(ceil(N / page size) per listing plus a constant), per-item calls, wall time,
items per second, peak RSS. Targets (issue 4): requests <= 1.05 x minimum + 2 per
stream; incremental <= 5% of the first sync's time; a poll with nothing changed
costs one request per stream; peak RSS <= 300 MB.

The email part (`--sources mail`) serves a private Dovecot (tests/connectors/dovecot.py)
whose Maildir is written directly (20,000 IMAP APPENDs would dominate the run);
Dovecot indexes and serves it over IMAP. Round trips are IMAP commands, counted by
the connector's gateway in the reconcile subprocess.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd.sandbox import Sandbox, World
from syncd.sandbox.generate import generate_world

GITHUB_TOKEN = "sandbox-github-token"
JIRA_TOKEN = "sandbox-jira-token"
REPO = "example-org/big-0"
GITHUB_PAGE = 100
JIRA_PAGE = 100
SLACK_TOKEN = "xoxb-sandbox"
SLACK_CHANNELS = ("C0000BIG1", "C0000BIG2")  # generate_world's two channels
SLACK_PAGE = 200
SERVICES = {"gh": "github", "ops": "jira", "chat": "slack"}


@dataclass
class Phase:
    name: str
    seconds: float
    peak_rss_mb: float
    report: dict[str, Any]
    requests: dict[str, Counter[str]]


def write_config(directory: Path, sandbox: Sandbox, sources: list[str]) -> Path:
    parts = [f'[ledger]\nurl = "sqlite:///{directory / "ledger.db"}"\n']
    if "gh" in sources:
        parts.append(
            f'[sources.gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
            f'token = "{GITHUB_TOKEN}"\nrepos = ["{REPO}"]\nper_page = {GITHUB_PAGE}\n'
        )
    if "ops" in sources:
        parts.append(
            f'[sources.ops]\nkind = "jira"\nurl = "{sandbox.urls["jira"]}"\n'
            f'email = "bot@acme.example"\ntoken = "{JIRA_TOKEN}"\n'
            f'jql = "project in (OPS, DEV)"\npage_size = {JIRA_PAGE}\n'
        )
    if "chat" in sources:
        # lookback_every = 0s: every incremental run also re-reads the look-back window.
        parts.append(
            f'[sources.chat]\nkind = "slack"\nbase_url = "{sandbox.urls["slack"]}"\n'
            f'token = "{SLACK_TOKEN}"\nchannels = {json.dumps(list(SLACK_CHANNELS))}\n'
            f'page_size = {SLACK_PAGE}\nlookback_every = "0s"\n'
        )
    path = directory / "syncd.toml"
    path.write_text("\n".join(parts))
    return path


def run_phase(name: str, config: Path, sandbox: Sandbox) -> Phase:
    sandbox.request_log.reset()
    command = [sys.executable, "-m", "syncd", "--log-level", "ERROR", "reconcile", "-c",
               str(config), "--format", "json"]  # fmt: skip
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    returncode = os.waitstatus_to_exitcode(status)
    if returncode not in (0, 1):
        raise SystemExit(f"{name}: reconcile failed ({returncode}):\n{stderr}")
    report = json.loads(stdout)
    requests = {service: sandbox.request_log.counts(service) for service in SERVICES.values()}
    return Phase(name, seconds, usage.ru_maxrss / 1024, report, requests)  # KiB on Linux


def github_minimum(items: int) -> int:
    # The issue listing, plus one repo-wide comments and one events listing per repository.
    return max(1, math.ceil(items / GITHUB_PAGE)) + 2


def jira_minimum(items: int) -> int:
    # The search pages, plus serverInfo, myself and field lookups.
    return math.ceil(items / JIRA_PAGE) + 3


def change_share(world: World, share: float, seed: int = 5) -> tuple[int, int]:
    """Edit `share` of the GitHub issues and of the Jira issues; returns the counts."""
    rng = random.Random(seed)
    repo = world.repo(REPO)
    gh_numbers = sorted(repo.issues) if repo else []
    gh_changed = rng.sample(gh_numbers, int(len(gh_numbers) * share))
    for number in gh_changed:
        world.edit_gh_issue(REPO, number, title=f"edited {number}")
    with world.lock:
        jira_keys = sorted(issue.key for issue in world.jira_issues.values())
    jira_changed = rng.sample(jira_keys, int(len(jira_keys) * share))
    for key in jira_changed:
        world.edit_jira_issue(key, summary=f"edited {key}")
    return len(gh_changed), len(jira_changed)


def slack_minimum(world: World, since: float | None = None) -> int:
    """History pages for the messages each channel must return, plus auth.test and users.list."""
    with world.lock:
        counts = [
            sum(1 for ts in world.channels[c].top_ts if since is None or float(ts) > since)
            for c in SLACK_CHANNELS
        ]
    return sum(max(1, math.ceil(n / SLACK_PAGE)) for n in counts) + 2


def change_slack(world: World, share: float, seed: int = 7) -> int:
    """`share` of the messages changed: half new requests, half done reactions on recent ones."""
    rng = random.Random(seed)
    total = sum(len(world.channels[c].top_ts) for c in SLACK_CHANNELS)
    changes = int(total * share)
    with world.lock:
        window = world.now.timestamp() - 14 * 86400
        recent = [(c, ts) for c in SLACK_CHANNELS for ts in world.channels[c].top_ts
                  if float(ts) > window]  # fmt: skip
    for channel, ts in rng.sample(recent, min(len(recent), changes // 2)):
        world.add_slack_reaction(channel, ts, "white_check_mark", user="p001")
    for n in range(changes - changes // 2):
        world.add_slack_message(SLACK_CHANNELS[n % 2], f"Please check the backup job ({n})",
                                user="p002")  # fmt: skip
    return changes


def print_phase(phase: Phase, minimums: dict[str, int], first: Phase | None) -> None:
    print(
        f"\n== {phase.name}: {phase.seconds:.1f}s wall, peak RSS {phase.peak_rss_mb:.0f} MB (target <= 300)"
    )
    for source, stats in phase.report["sources"].items():
        service = SERVICES[source]
        made = sum(phase.requests[service].values())
        per_item = sum(
            n for route, n in phase.requests[service].items()
            if ("/comments" in route and "{number}" in route)
            or "sub_issues" in route or "blocked_by" in route or "replies" in route
        )  # fmt: skip
        minimum = minimums[source]
        items = stats["fetched"]
        print(
            f"  {source}: fetched {items:,} (new {stats['new']:,}, updated {stats['updated']:,}, "
            f"unchanged {stats['unchanged']:,}); requests {made} vs minimum {minimum} "
            f"(target <= {1.05 * minimum + 2:.0f}); per-item calls {per_item}; "
            f"sync {stats['seconds']:.2f}s (process {phase.seconds:.2f}s), "
            f"{items / max(stats['seconds'], 1e-9):,.0f} items/s"
            + (f"; failed: {stats['error']}" if stats["failed"] else "")
        )
        for route, count in sorted(phase.requests[service].items()):
            print(f"      {count:6d}  {route}")
    if first is not None:
        for source, stats in phase.report["sources"].items():
            before = first.report["sources"][source]["seconds"]
            print(
                f"  {source}: sync time vs first sync: {stats['seconds'] / before:.1%} "
                f"(target <= 5%; whole process incl. start-up: {phase.seconds / first.seconds:.1%})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--github", type=int, default=20_000)
    parser.add_argument("--jira", type=int, default=20_000)
    parser.add_argument("--sources", default="gh,ops", help="comma-separated: gh, ops, chat, mail")
    parser.add_argument("--emails", type=int, default=20_000)
    parser.add_argument("--slack", type=int, default=20_000)
    parser.add_argument("--email-phase", help=argparse.SUPPRESS)  # internal: one mail reconcile
    args = parser.parse_args()
    if args.email_phase:
        return email_phase(Path(args.email_phase))
    sources = args.sources.split(",")
    if "mail" in sources:
        email_benchmark(args.emails)
        sources.remove("mail")
        if not sources:
            return

    started = time.perf_counter()
    document = generate_world(
        github_issues=args.github,
        jira_issues=args.jira,
        slack_messages=args.slack if "chat" in sources else 0,
        seed=1,
    )
    document["tokens"] = {"github": GITHUB_TOKEN, "jira": JIRA_TOKEN, "slack": SLACK_TOKEN}
    world = World.from_dict(document)
    print(
        f"world: {args.github:,} GitHub items, {args.jira:,} Jira issues, "
        f"{args.slack if 'chat' in sources else 0:,} Slack messages "
        f"(generated in {time.perf_counter() - started:.1f}s)"
    )
    with tempfile.TemporaryDirectory() as tmp, Sandbox(world) as sandbox:
        config = write_config(Path(tmp), sandbox, sources)
        first = run_phase("first sync", config, sandbox)
        minimums = {"gh": github_minimum(args.github), "ops": jira_minimum(args.jira)}
        print_phase(first, {**minimums, "chat": slack_minimum(world)}, None)
        window_start = time.time() - 14 * 86400  # the look-back window the next run re-reads
        gh_changed, jira_changed = change_share(world, 0.01)
        slack_changed = change_slack(world, 0.01) if "chat" in sources else 0
        print(f"slack: {slack_changed:,} messages changed (new or reacted to)")
        second = run_phase(
            f"incremental ({gh_changed:,} + {jira_changed:,} changed)", config, sandbox
        )
        # Each edit is also one event in the repo-wide events listing: those pages count too.
        gh_minimum = github_minimum(gh_changed) + max(0, math.ceil(gh_changed / 100) - 1)
        print_phase(
            second,
            {"gh": gh_minimum, "ops": jira_minimum(jira_changed),
             "chat": slack_minimum(world, since=window_start)},
            first,
        )  # fmt: skip
        quiet = run_phase("poll with nothing changed", config, sandbox)
        # A quiet Slack poll still re-reads the look-back window (lookback_every = 0s here).
        print_phase(
            quiet, {"gh": 1, "ops": 1, "chat": slack_minimum(world, since=window_start)}, first
        )


# --------------------------------------------------------------------------- email


def _dovecot_module() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tests" / "connectors" / "dovecot.py"
    spec = importlib.util.spec_from_file_location("syncd_bench_dovecot", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def email_phase(config: Path) -> None:
    """In the child: one reconcile of the mail source, printing its report and IMAP commands."""
    from syncd.clock import SystemClock
    from syncd.config import load_config
    from syncd.connectors.imap.gateway import ImapGateway
    from syncd.ledger.repository import Ledger
    from syncd.sync import pull_all

    counted: list[tuple[int, list[str]]] = []
    close = ImapGateway.close

    def recording_close(self: ImapGateway) -> None:
        close(self)
        counted.append((self.commands, self.trace))

    ImapGateway.close = recording_close  # type: ignore[method-assign]
    settings = load_config(config)
    ledger = Ledger.open(settings.ledger.url)
    summaries, _ = pull_all(settings, ledger, ["mail"], SystemClock())
    ledger.close()
    commands, trace = counted[-1]
    print(json.dumps({"mail": summaries["mail"].as_json(), "commands": commands,
                      "reads": Counter(what.split()[0] for what in trace)}))  # fmt: skip


def _run_email_phase(name: str, config: Path) -> tuple[float, float, dict[str, Any]]:
    command = [sys.executable, __file__, "--email-phase", str(config)]
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
    if os.waitstatus_to_exitcode(status) != 0 or not lines:
        raise SystemExit(f"{name}: the mail reconcile failed")
    return seconds, usage.ru_maxrss / 1024, json.loads(lines[-1])


def _write_mail(maildir: Path, count: int, seed: int = 3) -> list[str]:
    """`count` messages in threads of 1-4 (root, then replies); returns the root ids."""
    rng = random.Random(seed)
    (maildir / "tmp").mkdir(parents=True, exist_ok=True)
    (maildir / "cur").mkdir(exist_ok=True)
    new = maildir / "new"
    new.mkdir(exist_ok=True)
    roots: list[str] = []
    written = 0
    while written < count:
        thread = len(roots)
        root = f"t{thread}@client.example"
        roots.append(root)
        for reply in range(min(rng.randint(1, 4), count - written)):
            _write_one(new, thread, reply, root)
            written += 1
    return roots


def _write_one(new: Path, thread: int, reply: int, root: str) -> None:
    sender = "carol@client.example" if reply % 2 == 0 else "alice@acme.example"
    headers = [
        f"From: {sender}",
        "To: support@acme.example",
        f"Subject: {'Re: ' if reply else ''}Request {thread}: VPN access",
        f"Date: Mon, 02 Mar 2026 {9 + reply % 9:02d}:{thread % 60:02d}:00 +0000",
        f"Message-ID: <{root if reply == 0 else f't{thread}.{reply}@mail.example'}>",
    ]
    if reply:
        headers += [f"In-Reply-To: <{root}>", f"References: <{root}>"]
    body = "Please grant VPN access by Friday, it is urgent.\n\nThanks\n"
    text = "\r\n".join(headers) + "\r\n\r\n" + body.replace("\n", "\r\n")
    (new / f"{thread}.{reply}.bench").write_bytes(text.encode())


def email_benchmark(count: int) -> None:
    dovecot = _dovecot_module()
    if not dovecot.dovecot_available():
        raise SystemExit("the email benchmark needs dovecot-imapd")
    server = dovecot.DovecotServer()
    server.start(users=1)
    try:
        user = server.add_user()
        maildir = server.maildir(user)
        started = time.perf_counter()
        roots = _write_mail(maildir, count)
        (maildir / ".Done" / "cur").mkdir(parents=True)
        for sub in ("new", "tmp"):
            (maildir / ".Done" / sub).mkdir()
        server.chown_tree(server.home(user))
        print(f"mail: {count:,} messages in {len(roots):,} threads written to the Maildir "
              f"in {time.perf_counter() - started:.1f}s")  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "syncd.toml"
            config.write_text(
                f'[ledger]\nurl = "sqlite:///{Path(tmp) / "ledger.db"}"\n\n'
                f'[sources.mail]\nkind = "imap"\nhost = "127.0.0.1"\nport = {server.port}\n'
                f'ssl = false\nusername = "{user}"\npassword = "secret"\n'
                'done_folder = "Done"\ndone_flag = "\\\\Flagged"\n'
                'team_addresses = ["support@acme.example"]\n\n'
                '[people.alice]\nemail = "alice@acme.example"\n'
            )
            heads = math.ceil(count / 2000)
            pages = math.ceil(count / 200)
            # LOGIN, STATUS x2, SELECT, SEARCH ALL, header FETCHes, body FETCH per page, LOGOUT.
            first = _run_email_phase("first", config)
            _print_email("first sync", *first, 6 + heads + pages)
            first_sync = first[2]["mail"]["seconds"]
            changed = _change_mail(server, user, roots, count // 100)
            seconds, rss, report = _run_email_phase("incremental", config)
            # LOGIN, STATUS x2, SELECT, SEARCH MODSEQ, FETCH the changed messages, FETCH
            # their threads' older messages at the UIDs the ledger recorded, LOGOUT.
            minimum = 8
            _print_email(
                f"incremental ({changed} changed)", seconds, rss, report, minimum, first_sync
            )
            quiet = _run_email_phase("quiet", config)
            _print_email("poll with nothing changed", *quiet, 4, first_sync)
    finally:
        server.stop()


def _change_mail(server: Any, user: str, roots: list[str], changes: int) -> int:
    """Half the changes are new replies, half are done flags set over IMAP."""
    from imapclient import IMAPClient

    rng = random.Random(11)
    replies = rng.sample(range(len(roots)), changes // 2)
    new = server.maildir(user) / "new"
    for thread in replies:
        _write_one(new, thread, 9, roots[thread])
    server.chown_tree(new)
    client = IMAPClient("127.0.0.1", port=server.port, ssl=False)
    client.login(user, "secret")
    client.select_folder("INBOX")
    uids = client.search(["ALL"])
    client.add_flags(rng.sample(uids, changes - len(replies)), [b"\\Flagged"])
    client.logout()
    return changes


def _print_email(
    name: str,
    seconds: float,
    rss: float,
    report: dict[str, Any],
    minimum: int,
    first_sync: float | None = None,
) -> None:
    stats = report["mail"]
    print(
        f"\n== mail {name}: {seconds:.1f}s wall, peak RSS {rss:.0f} MB (target <= 300)\n"
        f"  mail: fetched {stats['fetched']:,} (new {stats['new']:,}, updated "
        f"{stats['updated']:,}, unchanged {stats['unchanged']:,}); IMAP round trips "
        f"{report['commands']} vs minimum {minimum}; sync {stats['seconds']:.2f}s; "
        f"reads {dict(report['reads'])}"
        + (f"; failed: {stats['error']}" if stats["failed"] else "")
    )
    if first_sync is not None:
        print(
            f"  mail: sync time vs first sync: {stats['seconds'] / first_sync:.1%} (target <= 5%)"
        )


if __name__ == "__main__":
    main()
