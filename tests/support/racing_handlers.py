"""Two Powertools REST resolvers standing for two Lambda functions of the local API server
(tests/unit/test_local_apiserver_race.py): each answers the ``who`` query parameter it reads
from ``app.current_event`` before and after a pause, and ``BARRIER`` (when set) holds the
handler until the other function's request is being handled too."""

from __future__ import annotations

import threading
import time
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

BARRIER: threading.Barrier | None = None
PAUSE = 0.005


def _resolver() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver()

    @app.get("/echo")
    def echo() -> dict[str, Any]:
        before = app.current_event.get_query_string_value("who")
        if BARRIER is not None:
            BARRIER.wait(timeout=5)
        time.sleep(PAUSE)
        return {"before": before, "after": app.current_event.get_query_string_value("who")}

    return app


first_app, second_app = _resolver(), _resolver()


def first(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return first_app.resolve(event, context)


def second(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return second_app.resolve(event, context)
