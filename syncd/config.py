"""Typed configuration from TOML, failing at start-up with the key path and line.

The file's shape is the contract in SPEC.md ("Configuration"). Each source's table
is validated by the settings model its connector declares (found by `kind`), so a
third-party connector brings its own keys. `${VAR}` reads the environment; secrets
are `SecretStr` and are registered with the log redactor the moment they load.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from syncd import redaction

DEFAULT_CONFIG_NAME = "syncd.toml"
CONFIG_ENV_VAR = "SYNCD_CONFIG"


class ConfigError(Exception):
    """A configuration problem a person must fix; the CLI exits 2 with this message."""


# --- value types --------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)")
_DURATION_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: object) -> timedelta:
    """Read "90s", "5m", "2d", "1h30m" (or a number of seconds) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("a duration is a string such as '5m', '2d' or '1h30m'")
    text = value.strip().lower()
    parts = _DURATION_PART.findall(text)
    if not parts or _DURATION_PART.sub("", text).strip():
        raise ValueError(f"{value!r} is not a duration; write e.g. '90s', '5m', '2d', '1h30m'")
    return timedelta(seconds=sum(float(n) * _DURATION_UNITS[u] for n, u in parts))


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Strict(BaseModel):
    """Base for config tables: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- tables -------------------------------------------------------------------------


class LedgerSettings(Strict):
    url: str = "sqlite:///syncd.db"


class SourceSettings(Strict):
    """Keys every source has; a connector's settings model extends this."""

    kind: str
    poll_interval: Duration | None = None


class SmtpSettings(Strict):
    host: str
    port: int = 587
    username: str | None = None
    password: SecretStr | None = None
    from_: str = Field(alias="from")
    starttls: bool = True
    ssl: bool = False
    timeout: float = 30.0


class ServiceSettings(Strict):
    listen: str = "127.0.0.1:8787"
    poll_interval: Duration = timedelta(minutes=5)
    # At most one webhook-triggered poll per source per this interval: a burst of
    # webhooks whose payload cannot be ingested directly costs a bounded number of polls.
    webhook_poll_spacing: Duration = timedelta(seconds=5)
    # The person told (once per outage) when a source keeps failing or refuses its token.
    admin: str | None = None
    # Consecutive failed polls before the admin is told; a refused token tells at once.
    alert_after: int = Field(default=3, ge=1)
    # Slow or abusive HTTP clients: time to send a request's head, then its body;
    # idle time between requests on a kept-alive connection; open connections (at the
    # cap, the one waiting longest on its client is closed to make room).
    http_header_timeout: Duration = timedelta(seconds=10)
    http_body_timeout: Duration = timedelta(seconds=30)
    http_keep_alive: Duration = timedelta(seconds=5)
    http_max_connections: int = Field(default=512, ge=2)

    @field_validator("http_header_timeout", "http_body_timeout", "http_keep_alive")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value


_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class PersonSettings(Strict):
    name: str | None = None
    email: str | None = None
    github: str | None = None
    jira: str | None = None
    slack: str | None = None
    # Nudges wait for the person's working hours, in their time zone
    # (default: [policy].timezone, working_hours and working_days).
    timezone: str | None = None
    working_hours: str | None = None
    working_days: list[Weekday] | None = None
    # One daily digest of everything due for this person instead of single nudges.
    digest: bool = False

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None and not _HOURS.match(value):
            raise ValueError(f"{value!r} is not HH:MM-HH:MM, e.g. '09:00-17:30'")
        return value


class PolicySettings(Strict):
    team_aliases: list[str] = ["team", "devops", "ops", "support"]
    timezone: str = "UTC"
    date_order: Literal["MDY", "DMY", "YMD"] = "MDY"
    # Noise control: a task carrying this label is never nudged; `pause_followups`
    # stops every nudge (violations are still tracked).
    snooze_label: str = "syncd:snooze"
    # The same from Slack: a reaction (by name) on the message snoozes its task.
    snooze_reaction: str = "zzz"
    # When nudges may go out, unless a person says otherwise; "00:00-24:00" for always.
    working_hours: str = "00:00-24:00"
    working_days: list[Weekday] = list(WEEKDAYS)

    _hours = field_validator("working_hours")(PersonSettings._hours.__func__)  # type: ignore[attr-defined]
    pause_followups: bool = False
    # Tasks (by key) exempt from follow-ups.
    exempt: list[str] = []


class FollowupSettings(Strict):
    via: Literal["source", "slack", "email"] = "source"
    every: Duration = timedelta(days=2)
    template: str | None = None
    max: int | None = None
    escalate_to: str | None = None


class RuleSettings(BaseModel):
    """One `[[rules]]` entry. Parameters beside `kind` are kept for the rule kind to check."""

    model_config = ConfigDict(extra="allow")

    id: str
    kind: str
    severity: Literal["error", "warning", "info"] = "warning"
    scope: str | None = None
    require: str | None = None
    followup: FollowupSettings | None = None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Settings(BaseSettings):
    """The whole configuration. Environment variables `SYNCD_<TABLE>__<KEY>` override the file."""

    model_config = SettingsConfigDict(
        extra="forbid", env_prefix="SYNCD_", env_nested_delimiter="__", populate_by_name=True
    )

    ledger: LedgerSettings = LedgerSettings()
    sources: dict[str, SourceSettings] = {}
    smtp: SmtpSettings | None = None
    service: ServiceSettings = ServiceSettings()
    people: dict[str, PersonSettings] = {}
    policy: PolicySettings = PolicySettings()
    rules: list[RuleSettings] = []

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init kwargs; the environment wins over it.
        return (env_settings, init_settings)


# --- loading ------------------------------------------------------------------------


def resolve_config_path(option: str | Path | None) -> Path:
    """`-c PATH`, else `$SYNCD_CONFIG`, else `./syncd.toml`."""
    if option:
        return Path(option)
    from_env = os.environ.get(CONFIG_ENV_VAR)
    return Path(from_env) if from_env else Path(DEFAULT_CONFIG_NAME)


def load_config(path: str | Path | None = None) -> Settings:
    """Read, interpolate and validate the configuration, or raise ConfigError."""
    config_path = resolve_config_path(path)
    text = _read(config_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_syntax_message(config_path, exc)) from None
    lines = KeyLines(text)
    data = _interpolate(data, (), config_path, lines)
    settings = _validate(data, config_path, lines)
    _register_secrets(settings)
    return settings


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found (pass -c PATH, set {CONFIG_ENV_VAR}, "
            f"or create ./{DEFAULT_CONFIG_NAME}; see config.example.toml)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _syntax_message(path: Path, exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    match = _TOML_POSITION.search(message)
    if match is None:
        return f"{path}: TOML syntax error: {message}"
    reason = message[: match.start()]
    return f"{path}:{match.group(1)}:{match.group(2)}: TOML syntax error: {reason}"


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _interpolate(value: Any, keypath: tuple[str | int, ...], path: Path, lines: KeyLines) -> Any:
    """Replace `${VAR}` in every string with the environment's value."""
    if isinstance(value, dict):
        return {k: _interpolate(v, (*keypath, k), path, lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*keypath, i), path, lines) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(
                f"{_where(path, lines, keypath)}: {_dotted(keypath)}: environment variable "
                f"{name} is not set "
                f"(the value is '${{{name}}}'); export it or write the value in the file"
            )
        return os.environ[name]

    return _VAR.sub(substitute, value)


def _validate(data: dict[str, Any], path: Path, lines: KeyLines) -> Settings:
    raw_sources = data.pop("sources", {})
    if not isinstance(raw_sources, dict):
        raise ConfigError(f"{_where(path, lines, ('sources',))}: [sources] must be a table")
    sources = {
        name: _validate_source(name, table, path, lines) for name, table in raw_sources.items()
    }
    try:
        settings = Settings(**data, sources=sources)
    except ValidationError as exc:
        raise ConfigError(_validation_message(exc, Settings, (), path, lines)) from None
    _check_person_references(settings, path, lines)
    return settings


def _check_person_references(settings: Settings, path: Path, lines: KeyLines) -> None:
    """Keys that name a person must name one of `[people.<id>]`."""
    references: list[tuple[tuple[str | int, ...], str | None]] = [
        (("service", "admin"), settings.service.admin),
    ]
    for index, rule in enumerate(settings.rules):
        if rule.followup is not None:
            escalation: tuple[str | int, ...] = ("rules", index, "followup", "escalate_to")
            references.append((escalation, rule.followup.escalate_to))
    known = list(settings.people)
    for keypath, person_id in references:
        if person_id is not None and person_id not in settings.people:
            raise ConfigError(
                f"{_where(path, lines, keypath)}: {_dotted(keypath)}: no person {person_id!r} "
                f"is configured"
                f"{_did_you_mean(person_id, known)} (add a [people.{person_id}] table)"
            )


def _validate_source(name: str, table: Any, path: Path, lines: KeyLines) -> SourceSettings:
    from syncd.plugins import available_kinds, settings_model_for

    keypath: tuple[str | int, ...] = ("sources", name)
    if not isinstance(table, dict):
        raise ConfigError(f"{_where(path, lines, keypath)}: a source must be a table")
    kind = table.get("kind")
    if not isinstance(kind, str):
        raise ConfigError(
            f"{_where(path, lines, keypath)}: sources.{name}.kind is missing "
            f"(one of: {', '.join(available_kinds())})"
        )
    model = settings_model_for(kind)
    if model is None:
        hint = _did_you_mean(kind, available_kinds())
        raise ConfigError(
            f"{_where(path, lines, (*keypath, 'kind'))}: sources.{name}.kind: unknown source "
            f"kind '{kind}'{hint} (known: {', '.join(available_kinds())})"
        )
    try:
        return model.model_validate(table)
    except ValidationError as exc:
        raise ConfigError(_validation_message(exc, model, keypath, path, lines)) from None


def _validation_message(
    exc: ValidationError,
    model: type[BaseModel],
    prefix: tuple[str | int, ...],
    path: Path,
    lines: KeyLines,
) -> str:
    """One line per problem, each naming file, line and key path."""
    messages = []
    for error in exc.errors():
        loc = tuple(part for part in error["loc"] if not _is_union_tag(part))
        keypath = (*prefix, *loc)
        dotted = _dotted(keypath)
        where = _where(path, lines, keypath)
        if error["type"] == "extra_forbidden":
            known = _field_names_at(model, loc[:-1])
            hint = _did_you_mean(str(loc[-1]), known)
            messages.append(f"{where}: {dotted}: unknown key{hint}")
        elif error["type"] == "missing":
            messages.append(f"{where}: {dotted}: required key is missing")
        else:
            got = error.get("input")
            shown = "" if _looks_secret(keypath) else f" (got {got!r})"
            reason = error["msg"].removeprefix("Value error, ")
            messages.append(f"{where}: {dotted}: {reason}{shown}")
    return "\n".join(messages)


def _is_union_tag(part: str | int) -> bool:
    # pydantic puts the chosen union member's type name in `loc`; people never wrote it.
    return isinstance(part, str) and (
        part.startswith(("function-", "constrained-"))
        or part in {"str", "int", "float", "bool", "timedelta", "list[str]", "dict[str,any]"}
    )


def _looks_secret(keypath: tuple[str | int, ...]) -> bool:
    return bool(keypath) and str(keypath[-1]).lower() in redaction.SECRET_KEYS


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _field_names_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The keys allowed at `loc` inside `model`, for "did you mean" hints."""
    current: Any = model
    for part in loc:
        current = _descend(current, part)
        if current is None:
            return []
    for candidate in _unwrap(current):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return [f.alias or name for name, f in candidate.model_fields.items()]
    return []


def _descend(annotation: Any, part: str | int) -> Any:
    for candidate in _unwrap(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            fields = {f.alias or n: f for n, f in candidate.model_fields.items()}
            if part in fields:
                return fields[part].annotation
        origin = get_origin(candidate)
        if origin in (list, dict, Mapping):
            return get_args(candidate)[-1]
    return None


def _unwrap(annotation: Any) -> Iterator[Any]:
    args = get_args(annotation)
    if get_origin(annotation) in (list, dict, Mapping) or not args:
        yield annotation
        return
    for arg in args:  # Optional[...] and other unions
        yield from _unwrap(arg)


def _dotted(keypath: tuple[str | int, ...]) -> str:
    out = ""
    for part in keypath:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _where(path: Path, lines: KeyLines, keypath: tuple[str | int, ...]) -> str:
    line = lines.find(keypath)
    return f"{path}:{line}" if line else str(path)


def _register_secrets(settings: Settings) -> None:
    for model in _walk_models(settings):
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, SecretStr):
                redaction.register_secret(value.get_secret_value())


def _walk_models(model: BaseModel) -> Iterator[BaseModel]:
    yield model
    for name in type(model).model_fields:
        value = getattr(model, name)
        children = (
            value.values()
            if isinstance(value, dict)
            else (value if isinstance(value, list) else [value])
        )
        for child in children:
            if isinstance(child, BaseModel):
                yield from _walk_models(child)


# --- where keys are -------------------------------------------------------------------

_TABLE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")


class KeyLines:
    """Best-effort map from TOML key paths to line numbers (tomllib reports none)."""

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple[str | int, ...], int] = {}
        arrays: dict[tuple[str, ...], int] = {}
        table: tuple[str | int, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = _TABLE.match(line)
            if header:
                names = tuple(_split_key(header.group(2)))
                if header.group(1) == "[[":
                    arrays[names] = arrays.get(names, -1) + 1
                    table = (*names, arrays[names])
                else:
                    table = names
                self._lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                self._lines.setdefault((*table, *_split_key(key.group(1))), number)

    def find(self, keypath: tuple[str | int, ...]) -> int | None:
        """The line of `keypath`, or of its closest enclosing key or table."""
        for end in range(len(keypath), 0, -1):
            line = self._lines.get(keypath[:end])
            if line is not None:
                return line
        return None


def _split_key(dotted: str) -> list[str]:
    return [part.strip().strip("\"'") for part in dotted.split(".")]
