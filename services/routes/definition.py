"""A route's definition: the validated request model, file patterns, path templates, triggers.

Pure: no boto3, no clock (callers pass times in). Every ValueError raised by a validator names
what is wrong; pydantic turns it into an error located at the offending field.

Why one module over 400 lines: the route request model and the small pure validators it calls
(templates, patterns, triggers, stability); a RouteDefinition is validated through all of them,
and each is tested on its own.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import string
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import re2
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from events.contract import PostAction, VerifyMode
from ferry.errors import Invalid
from ferry.validation import Name, path_problem

PLACEHOLDERS = frozenset(
    {"filename", "stem", "ext", "relpath", "yyyy", "mm", "dd", "customer", "route"}
)
MARKER_PLACEHOLDERS = frozenset({"name", "stem"})
_EVERY = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Largest file size a route may filter on: 5 TiB (the S3 object limit). Keeps the value well
# inside DynamoDB's 38-digit number limit.
MAX_FILE_SIZE = 5 * 1024**4
# Regex routes are matched by RE2 (linear time: no catastrophic backtracking on the shared
# scanner/push consumer); the file name fed to any pattern is bounded too.
MAX_MATCHED_NAME = 1024
# Longest "every" / "min_age" duration.
MAX_DURATION_SECONDS = 30 * 86400


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative(value: str, *, what: str, allow_empty: bool = True) -> str:
    if value == "" and allow_empty:
        return value
    if value == "":
        raise ValueError(f"{what} must not be empty")
    if _CONTROL.search(value):
        raise ValueError(f"{what} must not contain control characters")
    if value.startswith("/"):
        raise ValueError(f"{what} is relative to the endpoint's base_path/prefix (no leading '/')")
    hostile = path_problem(value)  # backslashes, drive letters, ~, %2e/%2f, Unicode look-alikes
    if hostile:
        raise ValueError(f"{what} {hostile}")
    for segment in value.rstrip("/").split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"{what} must not contain empty, '.' or '..' segments")
    return value


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------


def template_fields(template: str) -> list[str]:
    """Placeholder names of a ``str.format``-style template (ValueError if malformed)."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"malformed template: {error}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} must not have a format spec or conversion")
        names.append(name)
    return names


def render(template: str, values: dict[str, str]) -> str:
    """Render a checked template; a trailing '/' means "this directory": ``{filename}`` is added."""
    if template.endswith("/") or template == "":
        template = template + "{filename}"
    return template.format(**values)


def check_rendered(path: str) -> str:
    """A rendered target path must stay under the target's base path (ValueError otherwise)."""
    if path == "" or path.endswith("/"):
        raise ValueError("renders to an empty file name")
    if path.startswith("/"):
        raise ValueError("renders to an absolute path: it would escape the target base path")
    if _CONTROL.search(path):
        raise ValueError("renders to a path with control characters")
    normal = posixpath.normpath(path)
    if normal.startswith("..") or any(s in ("..", ".", "") for s in path.split("/")):
        raise ValueError("renders to a path with '.', '..' or empty segments: it could escape")
    return path


def template_values(relpath: str, *, customer: str, route: str, when: datetime) -> dict[str, str]:
    filename = relpath.rsplit("/", 1)[-1]
    stem, dot, ext = filename.rpartition(".")
    if not dot or not stem:
        stem, ext = filename, ""
    return {
        "filename": filename,
        "stem": stem,
        "ext": ext,
        "relpath": relpath,
        "yyyy": f"{when.year:04d}",
        "mm": f"{when.month:02d}",
        "dd": f"{when.day:02d}",
        "customer": customer,
        "route": route,
    }


# Sample values that try to escape: a template is refused when any of them escapes.
_PROBES = (
    {"relpath": "a.csv"},
    {"relpath": "sub/dir/a.tar.gz"},
    {"relpath": "noext"},
)


def check_template(template: str) -> str:
    names = template_fields(template)
    unknown = sorted(set(names) - PLACEHOLDERS)
    if unknown:
        raise ValueError(
            f"unknown placeholder {{{unknown[0]}}}; known: "
            + ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
        )
    if template.startswith("/"):
        raise ValueError("must be relative to the target's base path (no leading '/')")
    hostile = path_problem(template)
    if hostile:
        raise ValueError(hostile)
    literal = "".join(text for text, *_ in string.Formatter().parse(template))
    if ".." in literal.split("/") or any(seg == ".." for seg in re.split(r"[{}]", literal)):
        raise ValueError("must not contain '..': it could escape the target base path")
    for probe in _PROBES:
        values = template_values(
            probe["relpath"], customer="cust", route="route", when=datetime(2026, 1, 2)
        )
        check_rendered(render(template, values))
    return template


# ---------------------------------------------------------------------------------------------
# Patterns
# ---------------------------------------------------------------------------------------------


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad user pattern is a 422, not a line on stderr


def compile_pattern(pattern: str, *, regex: bool) -> Any:
    """The pattern compiled for matching (a glob is translated first).

    A regular expression is compiled by RE2 (linear-time matching, no backreferences or
    look-around): a user pattern such as ``^(a+)+$`` cannot freeze the shared scanner. A glob's
    translation never backtracks catastrophically, so it keeps the ``re`` engine.
    """
    if regex:
        try:
            return re2.compile(pattern, _RE2_OPTIONS)
        except re2.error as error:
            detail = error.args[0] if error.args else error
            if isinstance(detail, bytes):
                detail = detail.decode("utf-8", "replace")
            raise ValueError(
                f"regular expression is not supported (RE2 syntax: no backreferences or "
                f"look-around): {detail}"
            ) from None
    if pattern.count("[") != pattern.count("]"):
        raise ValueError("glob does not compile: unbalanced '[' ']'")
    try:
        return re.compile(fnmatch.translate(pattern))
    except re.error as error:  # pragma: no cover - fnmatch escapes almost everything
        raise ValueError(f"glob does not compile: {error}") from None


# ---------------------------------------------------------------------------------------------
# Triggers: "every" durations and 5-field cron expressions
# ---------------------------------------------------------------------------------------------


def every_seconds(value: str) -> int:
    found = _EVERY.match(value.strip())
    if not found:
        raise ValueError("must look like 30s, 5m, 1h or 1d")
    seconds = int(found.group(1)) * _UNITS[found.group(2)]
    if seconds < 10:
        raise ValueError("must be at least 10s")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError("must be at most 30d")
    return seconds


_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def _cron_field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"bad step in {text!r}")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            if not (a.isdigit() and b.isdigit()):
                raise ValueError(f"bad range in {text!r}")
            start, end = int(a), int(b)
        elif part.isdigit():
            start = end = int(part)
            if step != 1:
                end = high
        else:
            raise ValueError(f"bad value {part!r}")
        if not (low <= start <= end <= high):
            raise ValueError(f"{text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse_cron(expression: str) -> tuple[frozenset[int], ...]:
    """minute hour day-of-month month day-of-week (0 = Sunday; 7 is accepted as Sunday)."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError("a cron expression has 5 fields: minute hour day month weekday")
    fields[4] = fields[4].replace("7", "0") if fields[4] == "7" else fields[4]
    return tuple(_cron_field(f, lo, hi) for f, (lo, hi) in zip(fields, _CRON_RANGES, strict=True))


def cron_matches(expression: str, when: datetime) -> bool:
    minute, hour, dom, month, dow = parse_cron(expression)
    weekday = (when.weekday() + 1) % 7  # Python: Monday=0 → cron: Sunday=0
    return (
        when.minute in minute and when.hour in hour and when.day in dom and when.month in month
    ) and weekday in dow


# ---------------------------------------------------------------------------------------------
# The request model
# ---------------------------------------------------------------------------------------------


class SourceDef(_Strict):
    endpoint_id: str = Field(min_length=1, max_length=128)
    path: str = Field(default="", max_length=1024, description="Directory (SFTP) or prefix (S3).")
    pattern: str = Field(default="*", min_length=1, max_length=512)
    regex: StrictBool = Field(default=False, description="pattern is a regular expression.")
    min_size: StrictInt | None = Field(default=None, ge=0, le=MAX_FILE_SIZE)
    max_size: StrictInt | None = Field(default=None, ge=0, le=MAX_FILE_SIZE)
    recursive: StrictBool = False

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _relative(value, what="path")

    @model_validator(mode="after")
    def _checks(self) -> SourceDef:
        try:
            compile_pattern(self.pattern, regex=self.regex)
        except ValueError as error:
            raise _at("pattern", str(error)) from None
        if (
            self.min_size is not None
            and self.max_size is not None
            and self.min_size > self.max_size
        ):
            raise _at("max_size", "must not be smaller than min_size")
        return self

    def matches(self, relpath: str) -> bool:
        """The pattern applies to the file name (the last segment of the relative path)."""
        name = relpath.rsplit("/", 1)[-1]
        if len(name) > MAX_MATCHED_NAME:
            return False
        compiled = compile_pattern(self.pattern, regex=self.regex)
        if self.regex:
            return compiled.search(name) is not None
        return compiled.match(name) is not None


class TargetDef(_Strict):
    endpoint_id: str = Field(min_length=1, max_length=128)
    path_template: str = Field(default="{filename}", max_length=1024)

    @field_validator("path_template")
    @classmethod
    def _template(cls, value: str) -> str:
        return check_template(value)


@lru_cache(maxsize=256)
def zone(name: str | None) -> ZoneInfo:
    """The IANA zone (ValueError naming the problem for an unknown name); None is UTC."""
    if name is None or name == "UTC":
        return ZoneInfo("UTC")
    if not isinstance(name, str) or not name or len(name) > 64 or name.startswith("/"):
        raise ValueError("must be an IANA time zone name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)"
        ) from None


def check_tz(value: str) -> str:
    zone(value)
    return value


def _drop_none(out: dict[str, Any], *names: str) -> dict[str, Any]:
    """Optional fields added later dump only when set: stored definitions stay as they were."""
    for name in names:
        if out.get(name) is None:
            out.pop(name, None)
    return out


class TriggerDef(_Strict):
    type: Literal["event", "schedule"]
    every: str | None = None
    cron: str | None = None
    tz: str | None = Field(
        default=None,
        max_length=64,
        description="IANA time zone the cron expression is read in (default UTC; DST-correct).",
    )

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_tz(value)

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        return _drop_none(handler(self), "tz")

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        if value is not None:
            every_seconds(value)
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            parse_cron(value)
        return value

    @model_validator(mode="after")
    def _shape(self) -> TriggerDef:
        if self.type == "schedule" and (self.every is None) == (self.cron is None):
            raise _at("every", "a schedule trigger needs exactly one of every / cron")
        if self.type == "event" and (self.every is not None or self.cron is not None):
            raise _at("every", "an event trigger takes no every / cron")
        if self.type == "event" and self.tz is not None:
            raise _at("tz", "an event trigger takes no tz")
        return self


_BY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class ExpectDef(_Strict):
    """A delivery SLA: at least ``min_files`` matching files delivered by each deadline."""

    every: str = Field(
        min_length=1,
        max_length=128,
        description='"daily", "weekdays" (Mon-Fri) or a 5-field cron expression of deadlines.',
    )
    by: str | None = Field(default=None, description="HH:MM local time (daily / weekdays).")
    tz: str = Field(default="UTC", max_length=64, description="IANA time zone of the deadlines.")
    min_files: StrictInt = Field(default=1, ge=1, le=10000)
    pattern: str | None = Field(
        default=None, min_length=1, max_length=512, description="Glob on the file name."
    )

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_tz(value)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            compile_pattern(value, regex=False)
        return value

    @model_validator(mode="after")
    def _shape(self) -> ExpectDef:
        if self.every in ("daily", "weekdays"):
            if self.by is None:
                raise _at("by", f'every="{self.every}" needs by (HH:MM)')
            if not _BY.match(self.by):
                raise _at("by", "must be HH:MM (00:00 to 23:59)")
            return self
        if self.by is not None:
            raise _at("by", "by goes with every=daily or weekdays; a cron names its own times")
        try:
            parse_cron(self.every)
        except ValueError as error:
            raise _at("every", f'"daily", "weekdays" or a cron expression: {error}') from None
        return self

    @property
    def cron(self) -> str:
        """The deadlines as a cron expression (in ``tz``)."""
        if self.every in ("daily", "weekdays"):
            assert self.by is not None
            hour, minute = self.by.split(":")
            days = "*" if self.every == "daily" else "1-5"
            return f"{int(minute)} {int(hour)} * * {days}"
        return self.every

    def matches(self, relpath: str) -> bool:
        if self.pattern is None:
            return True
        name = relpath.rsplit("/", 1)[-1]
        return bool(compile_pattern(self.pattern, regex=False).match(name))


class StableDef(_Strict):
    checks: StrictInt = Field(default=2, ge=1, le=100)
    min_age: str | None = Field(default=None, description="e.g. 30s, 5m: minimum file age.")
    done_marker: str | None = Field(
        default=None, max_length=256, description="e.g. {name}.done or {stem}.ok"
    )

    @field_validator("min_age")
    @classmethod
    def _min_age(cls, value: str | None) -> str | None:
        if value is not None:
            min_age_seconds(value)
        return value

    @field_validator("done_marker")
    @classmethod
    def _marker(cls, value: str | None) -> str | None:
        if value is None:
            return value
        names = template_fields(value)
        unknown = sorted(set(names) - MARKER_PLACEHOLDERS)
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; known: {{name}}, {{stem}}")
        if not names:
            raise ValueError("must contain {name} or {stem}")
        if "/" in value:
            raise ValueError("must name a file in the same directory (no '/')")
        return value

    @property
    def min_age_seconds(self) -> int:
        return min_age_seconds(self.min_age) if self.min_age else 0


def min_age_seconds(value: str) -> int:
    found = _EVERY.match(value.strip())
    if not found:
        raise ValueError("must look like 30s, 5m, 1h or 1d")
    seconds = int(found.group(1)) * _UNITS[found.group(2)]
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError("must be at most 30d")
    return seconds


class RouteDefinition(_Strict):
    """POST /routes (and the full definition after a PATCH)."""

    name: Name
    source: SourceDef
    targets: list[TargetDef] = Field(min_length=1, max_length=10)
    trigger: TriggerDef
    overwrite: StrictBool = False
    post_action: PostAction = PostAction.NONE
    move_to: str | None = Field(default=None, max_length=1024)
    max_attempts: StrictInt = Field(default=5, ge=1, le=20)
    verify: VerifyMode = VerifyMode.DIGEST
    stable: StableDef = Field(default_factory=StableDef)
    once_per_name: StrictBool = False
    enabled: StrictBool = True
    expect: ExpectDef | None = Field(
        default=None, description="Delivery SLA: RouteFileLate when files are not in by then."
    )

    @field_validator("move_to")
    @classmethod
    def _move_to(cls, value: str | None) -> str | None:
        return None if value is None else _relative(value, what="move_to", allow_empty=False)

    @model_validator(mode="after")
    def _options(self) -> RouteDefinition:
        if self.post_action == PostAction.MOVE and not self.move_to:
            raise _at("move_to", "post_action=move needs move_to")
        if self.post_action != PostAction.MOVE and self.move_to is not None:
            raise _at("move_to", "move_to is only allowed with post_action=move")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        return _drop_none(handler(self), "expect")

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class FieldError(Invalid, ValueError):
    """A ValueError that names its field (model validators check several fields at once)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)
        self.message = message


def _at(field: str, message: str) -> FieldError:
    return FieldError(field, message)


UPDATABLE = frozenset(RouteDefinition.model_fields) - {"enabled"}


class InvalidDefinition(Invalid, ValueError):
    code = "validation_error"

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message, field=field)


def parse_definition(raw: Any) -> RouteDefinition:
    """Validate a route definition; InvalidDefinition names the first offending field."""
    if not isinstance(raw, dict):
        raise InvalidDefinition("the body must be a JSON object", "body")
    try:
        return RouteDefinition.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        loc = [str(p) for p in first.get("loc", ())]
        cause = (first.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError) and cause.field:
            loc.append(cause.field)
            message = cause.message
        else:
            message = first.get("msg", "invalid")
            if first.get("type") == "extra_forbidden":
                message = "unknown field"
            message = message.removeprefix("Value error, ")
        field = ".".join(loc) or None
        raise InvalidDefinition(f"{field}: {message}", field) from None
