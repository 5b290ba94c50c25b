"""The worker service's own bookkeeping; no domain data."""

from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """A worker process of the worker service, and when it last said it was alive. A task
    running on a worker silent for WORKER_LOST_AFTER seconds is run again elsewhere."""

    worker_id = models.CharField(max_length=64, primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.worker_id
