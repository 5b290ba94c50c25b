"""The worker service: runs the tasks the web processes enqueue (docs/operations.md,
Background tasks); what it adds to django-tasks-db's loop and why: docs/design.md."""
