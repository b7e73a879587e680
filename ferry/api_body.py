"""The request body, parsed once at the edge: bounded nesting depth, bounded integer literals,
strict Unicode (no lone surrogate, no NUL, no control character outside multi-line fields).

``ferry.api`` re-exports these names; its resolver calls ``parse_json_body`` before routing.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ferry.errors import BadRequest, Invalid
from ferry.validation import MULTILINE_FIELDS, unsafe_text_field

MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 32  # no Ferry number needs more; Python refuses > 4,300 digits anyway

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class _TooManyDigits:
    """Stands in for an integer literal too long to be a Ferry value (found after parsing, so
    the error names its field)."""


_TOO_MANY_DIGITS = _TooManyDigits()


def _parse_int(text: str) -> int | _TooManyDigits:
    return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else _TOO_MANY_DIGITS


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(text: str) -> int:
    """The deepest nesting of arrays/objects in JSON text (strings ignored), without recursing."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _bad_value_field(value: Any, path: tuple[str, ...] = ()) -> tuple[str, str] | None:
    """(dotted field, reason) of the first value of a parsed body that no Ferry field accepts:
    an over-long integer literal, or a string (key or value) with a lone surrogate, a NUL or a
    control character (tab, CR and LF only in multi-line fields such as ``private_key``)."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if item is _TOO_MANY_DIGITS:
            return ".".join(where) or "body", f"an integer of at most {MAX_INT_DIGITS} digits"
        if isinstance(item, str):
            reason = unsafe_text_field(
                item, multiline=bool(where) and where[-1] in MULTILINE_FIELDS
            )
            if reason:
                return ".".join(where) or "body", reason
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                stack.append((child, (*where, str(key))))
                stack.append((key, where))
        elif isinstance(item, list):
            for index in range(len(item) - 1, -1, -1):
                stack.append((item[index], (*where, str(index))))
    return None


def unencodable_field(value: Any, path: tuple[str, ...] = ()) -> str | None:
    """The dotted path of the first string of a parsed body that is not acceptable text."""
    found = _bad_value_field(value, path)
    return found[0] if found else None


def parse_json_body(raw: str | bytes) -> Any:
    """Parse a request body. BadRequest (400, field ``body``) when it cannot be read at all: not
    UTF-8, not JSON, nested deeper than MAX_JSON_DEPTH; Invalid (422) naming the field of an
    integer literal over MAX_INT_DIGITS digits or a string with a lone surrogate or NUL."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(
                "request body is not UTF-8", field="body", code="invalid_json"
            ) from None
    else:
        text = raw
    if _depth(text) > MAX_JSON_DEPTH:
        raise BadRequest(
            f"request body is nested more than {MAX_JSON_DEPTH} levels deep",
            field="body",
            code="invalid_json",
        )
    try:
        body = json.loads(text, parse_int=_parse_int, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise BadRequest(
            "request body is not valid JSON", field="body", code="invalid_json"
        ) from None
    bad = _bad_value_field(body)
    if bad is not None:
        where, reason = bad
        raise Invalid(f"{where}: {reason}", field=where)
    return body


def is_json_media_type(value: str | None) -> bool:
    if not value:
        return False
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json"
