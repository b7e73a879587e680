"""e2e tests: the local stack (``ferry up`` / ``ferry demo``) driven through the CLI and HTTP API."""

from __future__ import annotations
