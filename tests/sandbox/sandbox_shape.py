"""``assert_same_shape``: field names, nesting and JSON value types, compared recursively."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def shape_differences(sim: Any, recorded: Any, missing_ok: Iterable[str] = (),
                      extra_ok: Iterable[str] = (), path: str = "$") -> list[str]:
    """Differences a client could notice. Paths look like ``$.user.login`` or ``$[].id``.

    ``null`` on either side matches any type (the field is nullable in the real API).
    ``missing_ok`` names recorded fields the simulator may leave out; ``extra_ok`` names
    simulator fields the recording lacks (newer than the recording). Both match by full
    path or by a bare field name.
    """
    missing, extra = set(missing_ok), set(extra_ok)
    problems: list[str] = []
    if sim is None or recorded is None:
        return problems
    if _kind(sim) != _kind(recorded):
        return [f"{path}: simulator has {_kind(sim)}, recording has {_kind(recorded)}"]
    if isinstance(sim, dict):
        for key in recorded.keys() - sim.keys():
            if not {key, f"{path}.{key}"} & missing:
                problems.append(f"{path}.{key}: missing from the simulator")
        for key in sim.keys() - recorded.keys():
            if not {key, f"{path}.{key}"} & extra:
                problems.append(f"{path}.{key}: not in the recording")
        for key in sim.keys() & recorded.keys():
            problems += shape_differences(sim[key], recorded[key], missing, extra,
                                          f"{path}.{key}")
    elif isinstance(sim, list) and sim and recorded:
        for item in sim:
            problems += shape_differences(item, recorded[0], missing, extra, f"{path}[]")
    return problems


def assert_same_shape(sim: Any, recorded: Any, missing_ok: Iterable[str] = (),
                      extra_ok: Iterable[str] = ()) -> None:
    problems = shape_differences(sim, recorded, missing_ok, extra_ok)
    assert not problems, "shape differs:\n  " + "\n  ".join(sorted(problems))
