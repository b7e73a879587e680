"""The local API server's functions handle one request at a time between them: Powertools keeps
the request being resolved on the ``BaseRouter`` class, so two resolvers of one process that run
at once read each other's request (the console's ledger search once read no ``name`` because the
page's parallel ``/endpoints`` call was being resolved at the same time). Real threads, real
Powertools resolvers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from ferry.apigw import rest_event
from ferry.local.apiserver import _Functions
from tests.support import racing_handlers

SPECS = ("tests.support.racing_handlers:first", "tests.support.racing_handlers:second")


def call(invoke: Callable[[str, dict[str, Any]], dict[str, Any]], spec: str, who: str) -> Any:
    response = invoke(spec, rest_event("GET", "/echo", query={"who": who}))
    assert response["statusCode"] == 200
    return json.loads(response["body"])


def race(invoke: Callable[[str, dict[str, Any]], dict[str, Any]], rounds: int) -> list[Any]:
    answers: list[Any] = []
    errors: list[BaseException] = []

    def client(spec: str, who: str) -> None:
        try:
            for _ in range(rounds):
                answers.append((who, call(invoke, spec, who)))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [
        threading.Thread(target=client, args=(SPECS[0], "acme")),
        threading.Thread(target=client, args=(SPECS[1], "globex")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    return answers


def test_the_hazard_is_real_two_resolvers_at_once_read_one_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both requests are inside their handlers before either reads its query again: both then
    read the one that was resolved last."""
    monkeypatch.setattr(racing_handlers, "BARRIER", threading.Barrier(2))
    handlers = {SPECS[0]: racing_handlers.first, SPECS[1]: racing_handlers.second}
    answers = race(lambda spec, event: handlers[spec](event, None), 1)
    seen = {who: answer["after"] for who, answer in answers}
    assert len(set(seen.values())) == 1, seen  # one of the two read the other's request


def test_the_local_functions_never_read_each_others_requests() -> None:
    functions = _Functions(SPECS)
    answers = race(functions.invoke, 40)
    assert len(answers) == 80
    wrong = [(who, a) for who, a in answers if a != {"before": who, "after": who}]
    assert not wrong, wrong[:3]
