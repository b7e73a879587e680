"""The transfer engine moved to :mod:`services.executor.transfer` (Source/Sink ports, K chunks in
flight, one resume routine); this module keeps the old import path of its public names."""

from __future__ import annotations

from services.executor.transfer import (
    Abandoned,
    Cancelled,
    EndpointPort,
    EngineSettings,
    Fault,
    LeaseLost,
    RunContext,
    Stats,
    TransferRun,
    commit_point,
)

__all__ = [
    "Abandoned",
    "Cancelled",
    "EndpointPort",
    "EngineSettings",
    "Fault",
    "LeaseLost",
    "RunContext",
    "Stats",
    "TransferRun",
    "commit_point",
]
