"""The endpoints service's published module for the executor: the one module of
``services.endpoints`` another service may import (import-linter's ``services-are-independent``
contract names it).

Two users, both in ``services/executor``:

* the validator (``services/executor/validator.py``) records its verdict through the endpoints
  application (:func:`endpoints_application`): ``EndpointValidated`` / ``ValidationFailed`` are
  the endpoints aggregate's own events, decided by its rules (version checks, retired endpoints),
  so the validator holds the application rather than writing the aggregate's stream itself;
* endpoint access (``services/executor/endpoint_access.py``) applies the tenancy rules for
  same-account buckets (:func:`same_account_access`, :data:`CUSTOMER_TAG`,
  :class:`TenancySettings`) — the same decision the endpoints service makes at registration.

Not done (issue 13 part 4's fuller form): the validator emitting its verdict as an integration
event that the endpoints service consumes and applies. Until then this module is the seam.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from services.endpoints.domain import EndpointNotFound
from services.endpoints.settings import TenancySettings
from services.endpoints.tenancy import CUSTOMER_TAG, same_account_access

if TYPE_CHECKING:
    from services.endpoints.application import EndpointsApplication as EndpointsApplication
    from services.endpoints.domain import Endpoint as Endpoint

__all__ = [
    "CUSTOMER_TAG",
    "EndpointNotFound",
    "TenancySettings",
    "endpoints_application",
    "same_account_access",
]


def endpoints_application(env: Mapping[str, str] | None = None) -> EndpointsApplication:
    """The endpoints application with its production adapters (``services.endpoints.bootstrap``);
    ``env`` selects the event store (PERSISTENCE_MODULE etc.; the process environment if None)."""
    from services.endpoints.bootstrap import build_application

    return build_application(env=env)
