"""e2e tests: the local stack (``ferry up`` / ``ferry demo``) driven through the CLI and HTTP API.

``stack``: one ``ferry up`` per test module (a subprocess on free ports, its own data dir named
after the module), stopped with SIGTERM after the module's last test; the stop must exit 0 and
leave no process of that data dir behind. Modules do not share a stack: their tests count one
customer's events (consumers), kill services (restart), claim names and buckets of the operator
customer, and each module's clean shutdown is itself a check. Tests that start and stop a stack
of their own (Ctrl-C, ``ferry demo``, keys) use :func:`tests.e2e.harness.start_stack` /
``running_stack`` directly.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.e2e.harness import Stack, processes_of, start_stack


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    module = request.module.__name__.rsplit(".", 1)[-1]
    running = start_stack(tmp_path_factory.mktemp(f"ferry-{module}") / "data")
    try:
        yield running
    finally:
        code = running.stop(signal.SIGTERM)
        assert code == 0, "".join(running.output[-40:])
        assert processes_of(running.data_dir) == []
