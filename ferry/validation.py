"""Strict text, names, paths and ids for every request model (pydantic ``Annotated`` types).

Plain functions raise ``ValueError`` with a reason (pydantic turns it into a 422 at the field);
the ``Annotated`` types apply them. Rules:

- text never contains NUL, C0/C1 control characters (incl. DEL, U+0085), U+2028/U+2029, bidi
  overrides/isolates, or lone surrogates; multi-line text (private keys) may contain tab, CR, LF;
- names are 1..128 characters of single-line text, no leading/trailing white space;
- relative paths, ``move_to`` and templates also reject backslashes, drive letters (``C:``), a
  leading ``~``, percent-encoded dots, slashes, backslashes or NUL (``%2e %2f %5c %00``, any
  case) and Unicode look-alikes of ``.``, ``/`` and ``\\`` (U+2025, U+FF0E, U+FF0F); the
  callers' ``.``/``..``/empty-segment rules are applied to the NFKC normal form too;
- ids are canonical UUIDs: lower-case, hyphenated, 36 characters.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, StringConstraints

__all__ = [
    "MAX_NAME_LENGTH",
    "MULTILINE_FIELDS",
    "UUID_PATTERN",
    "CanonicalId",
    "MultilineText",
    "Name",
    "SafePath",
    "SafeText",
    "check_name",
    "check_path_text",
    "check_text",
    "is_canonical_id",
    "path_problem",
    "unsafe_text_field",
]

MAX_NAME_LENGTH = 128
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_UUID = re.compile(UUID_PATTERN)

#: Body fields whose text may span lines (tab, CR and LF allowed; nothing else).
MULTILINE_FIELDS = frozenset({"private_key"})

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_MULTILINE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_DRIVE = re.compile(r"^[A-Za-z]:")
_PERCENT = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)
_PATH_CHARS = "./\\"


def unsafe_text_field(
    value: str, *, allow_control: bool = False, multiline: bool = False
) -> str | None:
    """Why ``value`` is not acceptable text (None when it is)."""
    if _SURROGATE.search(value):
        return "not valid Unicode (a lone surrogate)"
    if "\x00" in value:
        return "must not contain NUL"
    if allow_control:
        return None
    pattern = _CONTROL_MULTILINE if multiline else _CONTROL
    found = pattern.search(value)
    if found:
        return f"must not contain control character U+{ord(found.group()):04X}"
    return None


def check_text(value: str, *, multiline: bool = False) -> str:
    reason = unsafe_text_field(value, multiline=multiline)
    if reason:
        raise ValueError(reason)
    return value


def check_name(value: str) -> str:
    check_text(value)
    if not value or len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"must be 1 to {MAX_NAME_LENGTH} characters")
    if value != value.strip():
        raise ValueError("must not start or end with white space")
    return value


def path_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable relative path or template (None when it is): the rules
    shared by transfer paths, ``move_to``, route paths and templates. Callers still apply their
    own ``/``, ``.``, ``..`` and empty-segment rules; this applies them to the NFKC form."""
    reason = unsafe_text_field(value)
    if reason:
        return reason
    if "\\" in value:
        return "must not contain backslashes"
    if _DRIVE.match(value):
        return "must not start with a drive letter"
    if value.startswith("~"):
        return "must not start with '~'"
    if _PERCENT.search(value):
        return "must not contain percent-encoded dots, slashes, backslashes or NUL"
    if not value.isascii():
        for char in value:
            if char not in _PATH_CHARS and any(
                c in _PATH_CHARS for c in unicodedata.normalize("NFKC", char)
            ):
                return f"must not contain U+{ord(char):04X}, a look-alike of '.', '/' or '\\'"
        normal = unicodedata.normalize("NFKC", value)
        for segment in normal.split("/"):
            if segment in (".", ".."):
                return "must not contain '.' or '..' segments (after Unicode normalisation)"
    return None


def check_path_text(value: str) -> str:
    reason = path_problem(value)
    if reason:
        raise ValueError(reason)
    return value


def is_canonical_id(value: object) -> bool:
    """A canonical (lower-case, hyphenated) UUID string."""
    if not isinstance(value, str) or not _UUID.match(value):
        return False
    try:
        return str(UUID(value)) == value
    except ValueError:  # pragma: no cover - the pattern admits only valid UUIDs
        return False


SafeText = Annotated[str, AfterValidator(check_text)]
"""Single-line text without control characters or lone surrogates."""

MultilineText = Annotated[str, AfterValidator(lambda v: check_text(v, multiline=True))]
"""Text that may contain tab, CR and LF (PEM/OpenSSH keys)."""

Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH),
    AfterValidator(check_name),
]
"""An endpoint, route or key name: 1..128 characters of single-line text."""

SafePath = Annotated[str, AfterValidator(check_path_text)]
"""Text that is safe as (part of) a relative path or template."""

CanonicalId = Annotated[str, StringConstraints(pattern=UUID_PATTERN, min_length=36, max_length=36)]
"""A Ferry id in a body: a canonical UUID."""
