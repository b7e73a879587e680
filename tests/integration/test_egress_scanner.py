"""The route scanner opens SFTP sources through the same egress policy as the validator and
the executor: with an allow-list that excludes the test sshd (127.0.0.1), a pull route's tick
records EGRESS_DENIED and sshd never sees a connection; with it allowed, the same route lists."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from services.routes.scanner import build_scanner
from tests.integration.routes_harness import RoutesStack
from tests.integration.test_routes_pull import pull  # noqa: F401 - the fixture
from tests.support.sshd import EGRESS_ALLOW_VARIABLE, SshdServer


def _route(setup: dict[str, Any]) -> str:
    stack: RoutesStack = setup["stack"]
    return stack.create_route(
        {
            "name": "partner-pull",
            "source": {"endpoint_id": setup["source"], "path": "inbox", "pattern": "*.csv"},
            "targets": [{"endpoint_id": setup["target"], "path_template": "in/{filename}"}],
            "trigger": {"type": "schedule", "every": "1m"},
        }
    )


def test_scanner_refused_by_the_egress_policy_never_connects(
    pull: dict[str, Any],  # noqa: F811
    sshd: SshdServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack: RoutesStack = pull["stack"]
    route_id = _route(pull)
    scanner = build_scanner(settings=stack.settings, app=stack.app)
    (pull["inbox"] / "a.csv").write_bytes(b"a,1\n")
    connections = sshd.count_log("Connection from ")

    monkeypatch.setenv(EGRESS_ALLOW_VARIABLE, "127.0.0.2/32")  # loopback, but not the sshd
    now = time.time()
    report = scanner.tick(now)
    assert report.listing_failures == 1 and report.dispatched == 0
    route = stack.app.current(route_id)
    assert route is not None and (route.scan_error or "").endswith("EGRESS_DENIED")
    time.sleep(0.3)
    assert sshd.count_log("Connection from ") == connections

    monkeypatch.setenv(EGRESS_ALLOW_VARIABLE, "127.0.0.1/32")
    scanner.tick(now + 60)
    route = stack.app.current(route_id)
    assert route is not None and route.scan_error is None  # RouteScanRecovered
    assert sshd.count_log("Connection from ") > connections


def test_unset_allow_list_refuses_loopback_for_the_scanner(
    pull: dict[str, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    sftp_dir: Path,
) -> None:
    stack: RoutesStack = pull["stack"]
    route_id = _route(pull)
    monkeypatch.delenv(EGRESS_ALLOW_VARIABLE)
    report = build_scanner(settings=stack.settings, app=stack.app).tick(time.time())
    assert report.listing_failures == 1
    route = stack.app.current(route_id)
    assert route is not None and (route.scan_error or "").endswith("EGRESS_DENIED")
