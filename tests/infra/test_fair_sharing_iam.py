"""Fair sharing (services/executor/fairness.py): the executor puts a waiting customer's job back
on its own queue as a fresh copy, so its task role may send to the executor queue (and still
only consume the validator queue)."""

from __future__ import annotations

from typing import Any

import pytest

import ferry.names as n
from tests.infra.conftest import Synth
from tests.infra.iam import can, logical_id
from tests.infra.test_iam import executor_role

NAMES = n.ResourceNames()


@pytest.fixture(scope="module")
def t(synth: Synth) -> dict[str, Any]:
    return synth.template_json()


def test_the_executor_may_send_to_its_own_queue_only(t: dict[str, Any]) -> None:
    role = executor_role(t)
    queue = logical_id(t, "AWS::SQS::Queue", QueueName=NAMES.executor_queue)
    validator = logical_id(t, "AWS::SQS::Queue", QueueName=NAMES.validator_queue)
    assert can(t, role, "sqs:SendMessage", queue)
    assert can(t, role, "sqs:DeleteMessage", queue)
    assert not can(t, role, "sqs:SendMessage", validator)
