"""Jobs service: the Job aggregate, POST /transfers + cancel + redrive, idempotency, and the
process manager that turns executor events into job state.

Entry points: ``services.jobs.handlers:handler`` (HTTP), ``services.jobs.process_manager:handler``
(SQS batch). Build the application with ``services.jobs.bootstrap.bootstrap``.
"""
