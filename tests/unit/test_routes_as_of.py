"""GET /routes/{id}?as_of= (issue 11): the Route aggregate rebuilt from its events up to then,
with the version it was rebuilt at — for a scripted history (create, update twice, disable)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from tests.unit.test_routes import World, world

__all__ = ["world"]


def _now() -> str:
    stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    time.sleep(0.002)  # the next event is stamped strictly later
    return stamp


def test_route_as_of_matches_the_state_at_each_time(world: World) -> None:
    route_id = world.route()
    created = _now()
    world.app.update("cust-a", "key-1", route_id, {"name": "invoices-2"})
    first_update = _now()
    world.app.update("cust-a", "key-1", route_id, {"name": "invoices-3"})
    second_update = _now()
    world.app.disable("cust-a", "key-1", route_id)
    disabled = _now()
    expected = [
        (created, 1, "invoices", "ENABLED"),
        (first_update, 2, "invoices-2", "ENABLED"),
        (second_update, 3, "invoices-3", "ENABLED"),
        (disabled, 4, "invoices-3", "DISABLED"),
    ]
    for at, version, name, status in expected:
        code, body = world.call("GET", f"/routes/{route_id}?as_of={at}")
        assert code == 200, body
        assert (body["version"], body["name"], body["status"]) == (version, name, status)
    assert world.call("GET", f"/routes/{route_id}?as_of=2000-01-01T00:00:00Z")[0] == 404
    assert world.call("GET", f"/routes/{route_id}?as_of=yesterday")[0] == 400
    assert world.call("GET", f"/routes/{route_id}?as_of=2030-01-01T00:00:00")[0] == 400
    other = world.call("GET", f"/routes/{route_id}?as_of={disabled}", key=world.other_key)
    assert other[0] == 404
