"""ferry/validation.py: the strict text, name, path and id rules every request model uses."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from ferry.validation import (
    CanonicalId,
    MultilineText,
    Name,
    SafePath,
    SafeText,
    is_canonical_id,
    path_problem,
)


class Model(BaseModel):
    name: Name | None = None
    text: SafeText | None = None
    key: MultilineText | None = None
    path: SafePath | None = None
    id: CanonicalId | None = None


def _field(**value: object) -> str:
    with pytest.raises(ValidationError) as caught:
        Model.model_validate(value)
    return str(caught.value.errors()[0]["loc"][0])


@pytest.mark.parametrize(
    "text",
    ["a\x00b", "a\x01", "a\x7f", "a\x85", "a\x9f", "a\u2028", "a\u2029", "a\u202e", "\udfff"],
)
def test_text_rejects_control_characters_and_surrogates(text: str) -> None:
    assert _field(text=text) == "text"
    assert _field(name=text) == "name"


def test_multiline_text_allows_tab_cr_lf_only() -> None:
    assert Model(key="-----BEGIN\r\n\tx\n-----END").key
    assert _field(key="a\x0bb") == "key"
    assert _field(key="a\x00b") == "key"


@pytest.mark.parametrize("name", ["", " a", "a ", "x" * 129, "a\nb", "a\tb"])
def test_names_are_single_line_and_1_to_128(name: str) -> None:
    assert _field(name=name) == "name"


def test_good_names() -> None:
    assert Model(name="x" * 128).name and Model(name="Partner SFTP \u00e9u (prod)").name


@pytest.mark.parametrize(
    "path",
    [
        "..\\..\\x",
        "C:\\x",
        "C:x",
        "~/x",
        "%2e%2e/x",
        "%2E%2E/x",
        "a%2fb",
        "a%5Cb",
        "%00",
        "\u2025/x",
        "\uff0e\uff0e/x",
        "a\uff0fb",
        "a/\u2024\u2024/b",
        "a\x85b",
    ],
)
def test_hostile_paths(path: str) -> None:
    assert path_problem(path) is not None
    assert _field(path=path) == "path"


@pytest.mark.parametrize(
    "path", ["in/a.csv", "dir/", "a..b/c", "é/ü.txt", "{yyyy}/{mm}/{filename}", "50%/x", "a~b"]
)
def test_ordinary_paths(path: str) -> None:
    assert path_problem(path) is None


def test_ids_are_canonical_uuids() -> None:
    good = "0b4f3c1e-8a2d-4c5e-9f00-1234567890ab"
    assert is_canonical_id(good) and Model(id=good).id == good
    for bad in (good.upper(), "{" + good + "}", good.replace("-", ""), "urn:uuid:" + good, "", 7):
        assert not is_canonical_id(bad)
    assert _field(id=good.upper()) == "id"
