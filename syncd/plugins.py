"""Connector discovery through the `syncd.connectors` entry point group.

A connector package (ours or a third party's) registers a class under its kind:

    [project.entry-points."syncd.connectors"]
    github = "syncd.connectors.github:GitHubConnector"

The class declares `settings_model`, the pydantic model of its `[sources.<name>]`
table, so the configuration can be validated before anything connects.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.config import SourceSettings

ENTRY_POINT_GROUP = "syncd.connectors"


@cache
def _registered() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_kinds() -> list[str]:
    return sorted(_registered())


@cache
def connector_class(kind: str) -> Any | None:
    """The connector class registered for `kind`, or None."""
    entry_point = _registered().get(kind)
    return entry_point.load() if entry_point is not None else None


def settings_model_for(kind: str) -> type[SourceSettings] | None:
    cls = connector_class(kind)
    model: type[SourceSettings] | None = getattr(cls, "settings_model", None)
    return model
