"""The worker's heartbeat (a row and the container's health file), and the recovery of
tasks whose worker went silent."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus, task_finished
from django_tasks_db.models import DBTaskResult

from core.probe import WORKER_HEALTH_FILE
from worker.housekeeping import run_housekeeping
from worker.models import WorkerHeartbeat

logger = logging.getLogger(__name__)


class WorkerLost(Exception):
    """The worker running a task went silent (killed, or its host lost) too many times."""


class Heartbeat(threading.Thread):
    """Beside the task loop: the worker's heartbeat row, its health file, the recovery of
    tasks whose worker went silent, and housekeeping. A thread of its own, so a long task
    does not silence the heartbeat."""

    def __init__(self, worker_id: str) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.worker_id = worker_id
        self.started_at = timezone.now()
        self.stopping = threading.Event()
        # Since when Postgres has answered every beat (monotonic), None while it does not.
        self.reachable_since: float | None = None
        self.next_housekeeping = time.monotonic()

    def run(self) -> None:
        while True:
            self.tick()
            if self.stopping.wait(settings.WORKER_HEARTBEAT_INTERVAL):
                return

    def tick(self) -> None:
        try:
            self.beat()
            if self.reachable_since is None:
                self.reachable_since = time.monotonic()
            # Judge other workers only after they could have written a beat since
            # Postgres came back: after an outage every heartbeat looks old.
            if time.monotonic() - self.reachable_since >= settings.WORKER_LOST_AFTER:
                recover_lost_tasks()
            if time.monotonic() >= self.next_housekeeping:
                self.next_housekeeping = time.monotonic() + settings.WORKER_HOUSEKEEPING_INTERVAL
                run_housekeeping()
        except DatabaseError as error:
            self.reachable_since = None
            logger.warning("worker %s: database unavailable for the heartbeat: %s", self.worker_id, error)
        finally:
            close_old_connections()

    def beat(self) -> None:
        now = timezone.now()
        WorkerHeartbeat.objects.update_or_create(
            worker_id=self.worker_id,
            defaults={"seen_at": now},
            create_defaults={
                "seen_at": now,
                "started_at": self.started_at,
                "hostname": socket.gethostname()[:255],
                "pid": os.getpid(),
            },
        )
        # The container healthcheck (core.probe --worker) reads the deadline of this beat.
        deadline = time.time() + settings.WORKER_LOST_AFTER
        partial = f"{WORKER_HEALTH_FILE}.{os.getpid()}"
        with open(partial, "w") as health_file:
            health_file.write(f"{deadline:.3f}\n")
        os.replace(partial, WORKER_HEALTH_FILE)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        try:
            WorkerHeartbeat.objects.filter(worker_id=self.worker_id).delete()
        except DatabaseError:
            pass  # the row goes stale and is pruned; its worker ran no task
        finally:
            close_old_connections()


def recover_lost_tasks() -> list[DBTaskResult[Any, Any]]:
    """Run again, or record as failed after TASK_MAX_ATTEMPTS runs, every running task whose
    worker has sent no heartbeat for WORKER_LOST_AFTER seconds. Returns the tasks failed."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.WORKER_LOST_AFTER)
    alive = set(WorkerHeartbeat.objects.filter(seen_at__gte=cutoff).values_list("worker_id", flat=True))
    failed: list[DBTaskResult[Any, Any]] = []
    with transaction.atomic():
        for result in DBTaskResult.objects.running().select_for_update(skip_locked=True).order_by("started_at"):
            claimant = result.worker_ids[-1] if result.worker_ids else ""
            if claimant in alive or (result.started_at and result.started_at >= cutoff):
                continue
            attempts = len(result.worker_ids)
            if attempts < settings.TASK_MAX_ATTEMPTS:
                logger.warning(
                    "task %s (%s): worker %s went silent; queued again (run %d of %d)",
                    result.id,
                    result.task_path,
                    claimant,
                    attempts + 1,
                    settings.TASK_MAX_ATTEMPTS,
                )
                result.status = TaskResultStatus.READY
                result.save(update_fields=["status"])
            else:
                logger.error(
                    "task %s (%s): worker %s went silent on run %d of %d; recorded as failed",
                    result.id,
                    result.task_path,
                    claimant,
                    attempts,
                    settings.TASK_MAX_ATTEMPTS,
                )
                result.set_failed(
                    WorkerLost(f"the worker running it went silent on each of {attempts} runs (last: {claimant})")
                )
                failed.append(result)
        # Workers gone for long: their rows serve no one.
        WorkerHeartbeat.objects.filter(seen_at__lt=now - 10 * timedelta(seconds=settings.WORKER_LOST_AFTER)).delete()
    for result in failed:
        # What the task loop sends for a task that raised: listeners tell the task's users.
        task_finished.send(sender=type(result.task.get_backend()), task_result=result.task_result)
    return failed
