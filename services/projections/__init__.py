"""Projections: read models fed by published events, the query API and rebuild.

Modules: ``readmodels`` (pure folds), ``application`` (Projector, Queries, the ReadModelStore
port), ``adapters`` (DynamoDB and in-memory stores), ``tables`` (read-model tables + GSIs),
``consumer`` (SQS → Projector, Lambda ``handler``), ``handlers`` (GET routes, Lambda
``handler``), ``rebuild`` (``rebuild()`` and ``python -m services.projections.rebuild``),
``samples`` (realistic event histories and ``to_stored`` for tests and demos).

Imports are per module (nothing is constructed or imported eagerly here).
"""
