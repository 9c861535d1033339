"""What a world file asks of the running sandbox: faults, webhook targets, a timeline.

```json
"faults":   [{"service": "github", "kind": "rate_limit", "route": "/repos/*/issues",
              "retry_after": 5, "times": 1}],
"webhooks": [{"service": "github", "url": "http://127.0.0.1:8787/webhooks/gh",
              "secret": "..."}],
"timeline": [{"after": "30s", "do": "close_gh_issue",
              "args": {"full_name": "example-org/api", "number": 1}},
             {"after": "10s", "every": "1m", "times": 5, "do": "add_slack_message",
              "args": {"channel_id": "C0123ABCD", "text": "VPN down again"}}]
```

A timeline step calls one of the world's mutation methods (the same ones tests
call), so a change made on a timer is served, logged and sent as a webhook exactly
like one a test makes. Everything is checked when the world is loaded, so a typo
fails at start-up with the step's position, not half-way through a demo.
"""

from __future__ import annotations

import inspect
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from syncd.sandbox.faults import KINDS, Faults
from syncd.sandbox.world import Json, World, WorldError

if TYPE_CHECKING:
    from syncd.sandbox.server import Sandbox

SERVICES = ("github", "jira", "slack")
_ACTION_PREFIXES = ("add_", "edit_", "close_", "reopen_", "reassign_", "transfer_", "move_",
                    "delete_", "transition_", "remove_")  # fmt: skip
# The options `Faults.add` takes beside the service and the kind.
_FAULT_OPTIONS = set(inspect.signature(Faults.add).parameters) - {"self", "service", "kind"}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Step:
    """One timed change: call `world.<action>(**args)` after `after`, then every `every`."""

    action: str
    args: dict[str, Any]
    after: float
    every: float | None = None
    times: int = 1


@dataclass
class Scenario:
    faults: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[dict[str, str]] = field(default_factory=list)
    timeline: list[Step] = field(default_factory=list)


def parse_scenario(data: Json) -> Scenario:
    """The world file's `faults`, `webhooks` and `timeline`, checked; WorldError if wrong."""
    return Scenario(
        faults=[_fault(i, spec) for i, spec in enumerate(_list(data, "faults"))],
        webhooks=[_webhook(i, spec) for i, spec in enumerate(_list(data, "webhooks"))],
        timeline=[_step(i, spec) for i, spec in enumerate(_list(data, "timeline"))],
    )


def apply(scenario: Scenario, sandbox: Sandbox) -> None:
    """Switch the faults on and point the webhooks (before the first request)."""
    for spec in scenario.faults:
        options = {key: value for key, value in spec.items() if key in _FAULT_OPTIONS}
        sandbox.faults.add(spec["service"], spec["kind"], **options)
    for target in scenario.webhooks:
        sandbox.webhooks.configure(target["service"], target["url"], target["secret"])


class Timeline:
    """Runs the steps on a background thread from `start()` until `stop()`."""

    def __init__(self, world: World, steps: list[Step]) -> None:
        self._world = world
        self._steps = steps
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.done: list[tuple[str, Any]] = []  # (action, result or the error) in order

    def start(self) -> None:
        if self._steps:
            self._thread = threading.Thread(target=self._run, name="sandbox-timeline", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        started = time.monotonic()
        due = sorted(
            (step.after + n * (step.every or 0.0), index, step)
            for index, step in enumerate(self._steps)
            for n in range(step.times)
        )
        for moment, _, step in due:
            if self._stop.wait(max(0.0, started + moment - time.monotonic())):
                return
            try:
                result: Any = getattr(self._world, step.action)(**step.args)
            except Exception as error:  # a step on a deleted item must not end the timeline
                result = error
            self.done.append((step.action, result))


def _list(data: Json, key: str) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise WorldError(f"{key}: expected a list")
    return value


def _fault(index: int, spec: Any) -> dict[str, Any]:
    where = f"faults[{index}]"
    spec = _table(
        where, spec, required={"service", "kind"}, allowed={"service", "kind"} | _FAULT_OPTIONS
    )
    _service(where, spec["service"])
    if spec["kind"] not in KINDS:
        raise WorldError(
            f"{where}.kind: unknown fault {spec['kind']!r} (one of {', '.join(KINDS)})"
        )
    return dict(spec)


def _webhook(index: int, spec: Any) -> dict[str, str]:
    where = f"webhooks[{index}]"
    keys = {"service", "url", "secret"}
    spec = _table(where, spec, required=keys, allowed=keys)
    _service(where, spec["service"])
    return {key: str(spec[key]) for key in keys}


def _step(index: int, spec: Any) -> Step:
    where = f"timeline[{index}]"
    spec = _table(where, spec, required={"do"}, allowed={"do", "args", "after", "every", "times"})
    action, args = spec["do"], spec.get("args") or {}
    method = getattr(World, action, None) if isinstance(action, str) else None
    if method is None or not action.startswith(_ACTION_PREFIXES):
        raise WorldError(f"{where}.do: {action!r} is not a change the world can make")
    if not isinstance(args, dict):
        raise WorldError(f"{where}.args: expected a table of the change's arguments")
    try:
        inspect.signature(method).bind(None, **args)
    except TypeError as error:
        raise WorldError(f"{where}.args: {error}") from None
    every = _seconds(f"{where}.every", spec["every"]) if "every" in spec else None
    times = spec.get("times", 1 if every is None else 1_000_000)
    if not isinstance(times, int) or times < 1:
        raise WorldError(f"{where}.times: expected a whole number of at least 1")
    return Step(action, args, _seconds(f"{where}.after", spec.get("after", "0s")), every, times)


def _table(where: str, spec: Any, *, required: set[str], allowed: set[str]) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise WorldError(f"{where}: expected a table")
    missing, unknown = required - spec.keys(), spec.keys() - allowed
    if missing:
        raise WorldError(f"{where}: missing {', '.join(sorted(missing))}")
    if unknown:
        raise WorldError(f"{where}: unknown key {', '.join(sorted(unknown))}")
    return spec


def _service(where: str, service: Any) -> None:
    if service not in SERVICES:
        raise WorldError(f"{where}.service: {service!r} is not one of {', '.join(SERVICES)}")


def _seconds(where: str, value: Any) -> float:
    match = _DURATION.match(str(value))
    if match is None:
        raise WorldError(f"{where}: {value!r} is not a duration such as '500ms', '30s', '5m'")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
