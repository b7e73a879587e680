"""Fair-share admission (services/executor/fairness.py) against an in-memory slot semaphore
with the DynamoSemaphore's contract (a slot below the limit that is free, expired or already
the holder's), on an injected clock."""

from __future__ import annotations

import math
from collections.abc import Collection

from services.executor.fairness import FIRST_GUESS, Admission, customer_key
from services.executor.settings import ExecutorSettings


class MemorySemaphore:
    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.slots: dict[tuple[str, int], tuple[str, float]] = {}
        self.asked = 0

    def try_acquire(
        self, key: str, limit: int, holder: str, lease_seconds: float, skip: Collection[int] = ()
    ) -> int | None:
        self.asked += 1
        for slot in range(max(1, limit)):
            held = self.slots.get((key, slot))
            if slot in skip:
                continue
            if held is None or held[1] < self.clock[0] or held[0] == holder:
                self.slots[(key, slot)] = (holder, self.clock[0] + lease_seconds)
                return slot
        return None

    def release(self, key: str, slot: int, holder: str) -> None:
        if self.slots.get((key, slot), ("",))[0] == holder:
            del self.slots[(key, slot)]


def admission(limits: dict[str, int]) -> tuple[Admission, MemorySemaphore, list[float]]:
    clock = [1000.0]
    semaphore = MemorySemaphore(clock)
    return (
        Admission(
            semaphore,
            lambda c: limits.get(c, 10),
            lease_seconds=60,
            recheck_seconds=2,
            clock=lambda: clock[0],
        ),
        semaphore,
        clock,
    )


def test_a_customer_gets_its_limit_and_no_more_while_another_is_admitted() -> None:
    fair, _, _ = admission({"A": 2})
    assert fair.admit("A", "e/1") == (customer_key("A"), 0)
    assert fair.admit("A", "e/2") == (customer_key("A"), 1)
    assert fair.admit("A", "e/3") is None
    assert fair.admit("B", "e/4") == (customer_key("B"), 0)


def test_a_blocked_customer_is_not_asked_again_until_recheck_or_one_of_its_jobs_ends() -> None:
    fair, semaphore, clock = admission({"A": 1})
    assert fair.admit("A", "e/1") is not None
    assert fair.admit("A", "e/2") is None
    asked = semaphore.asked
    assert fair.admit("A", "e/3") is None and semaphore.asked == asked  # remembered
    clock[0] += 2.5
    assert fair.admit("A", "e/3") is None and semaphore.asked == asked + 1  # asked again
    semaphore.release(customer_key("A"), 0, "e/1")
    fair.ended("A", 3.0)
    assert fair.admit("A", "e/3") == (customer_key("A"), 0)


def test_put_back_jobs_are_spaced_by_the_customers_job_time_over_its_limit() -> None:
    fair, _, clock = admission({"A": 2})
    # before any job ended here: FIRST_GUESS per job, two at a time (whole seconds, rounded up)
    first = [fair.put_back("A", f"j{i}") for i in range(6)]
    assert first == [math.ceil(i * FIRST_GUESS / 2) for i in range(6)]
    fair.ended("A", 4.0)  # A's jobs take 4 s: two every 4 s
    clock[0] += 100  # the line has drained
    assert [fair.put_back("A", f"k{i}") for i in range(6)] == [0, 2, 4, 6, 8, 10]
    # another customer's line is its own
    assert fair.put_back("B", "b0") == 0


def test_a_job_back_at_its_place_keeps_it_and_an_admitted_one_is_forgotten() -> None:
    fair, semaphore, clock = admission({"A": 1})
    fair.ended("A", 10.0)
    assert fair.admit("A", "e/run", "run") is not None
    assert [fair.put_back("A", j) for j in ("j0", "j1", "j2")] == [0, 10, 20]
    # j0 comes back at once, A is still at its limit: 1 s later, the line does not grow
    assert fair.put_back("A", "j0") == 1
    assert fair.put_back("A", "j3") == 30
    # j0 is admitted later; put back again afterwards it is a new job at the end of the line
    semaphore.release(customer_key("A"), 0, "e/run")
    fair.ended("A", 10.0)
    clock[0] += 1
    assert fair.admit("A", "e/j0", "j0") is not None
    assert fair.put_back("A", "j0") == 39


def test_the_longest_delay_is_sqs_maximum() -> None:
    fair, _, _ = admission({"A": 1})
    fair.ended("A", 600.0)
    assert [fair.put_back("A", f"j{i}") for i in range(3)] == [0, 600, 900]


def test_limits_come_from_the_setting_and_its_per_customer_overrides() -> None:
    settings = ExecutorSettings.model_validate(
        {"customer_concurrency": 4, "customer_concurrency_overrides": '{"big": 40}'}
    )
    assert settings.customer_limit("big") == 40
    assert settings.customer_limit("small") == 4


def test_a_bad_overrides_value_stops_the_executor_at_start_up_naming_the_variable() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="CUSTOMER_CONCURRENCY_OVERRIDES"):
        ExecutorSettings.model_validate({"customer_concurrency_overrides": "{not json"})
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        ExecutorSettings.model_validate({"customer_concurrency_overrides": '{"a": 0}'})
