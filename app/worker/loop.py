"""The worker service's process: django-tasks-db's task loop, with the heartbeat beside it."""

from __future__ import annotations

import logging
import os
import socket
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils.crypto import get_random_string
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from worker.heartbeat import Heartbeat
from worker.queue import serve_metrics

logger = logging.getLogger(__name__)


class TaskWorker(Worker):
    """django-tasks-db's loop, paused (not ended) by a Postgres outage."""

    def run(self) -> None:
        pause = settings.WORKER_POLL_INTERVAL
        while self.running:
            try:
                self.release_own_tasks()
                super().run()
                return
            except DatabaseError as error:
                logger.warning("worker %s: database unavailable, retrying in %.1f s: %s", self.worker_id, pause, error)
                close_old_connections()
                time.sleep(pause)
                pause = min(pause * 2, 10.0)
            else:
                pause = settings.WORKER_POLL_INTERVAL

    def release_own_tasks(self) -> None:
        """Tasks still marked as running on this worker while it runs none (an outage cut the
        write of their result): queued again, to run from the start."""
        for result in DBTaskResult.objects.running():
            if result.worker_ids and result.worker_ids[-1] == self.worker_id:
                result.status = TaskResultStatus.READY
                result.save(update_fields=["status"])
                logger.warning("task %s: its result was not recorded (outage); queued again", result.id)


def run(max_tasks: int | None = None, handle_signals: bool = True) -> None:
    """The worker service's process: the heartbeat first (so no task is ever claimed by a
    worker others cannot see), then the task loop until SIGTERM, which lets the running
    task finish (the service's stop grace period covers it) and claims no other.
    `handle_signals=False`: another thread owns them (run_worker --reload)."""
    worker_id = f"{socket.gethostname()[:40]}-{os.getpid()}-{get_random_string(8)}"
    heartbeat = Heartbeat(worker_id)
    while True:
        heartbeat.tick()
        if heartbeat.reachable_since is not None:
            break
        time.sleep(min(settings.WORKER_HEARTBEAT_INTERVAL, 2.0))
    heartbeat.start()
    serve_metrics()
    worker = TaskWorker(
        queue_names=["*"],
        interval=settings.WORKER_POLL_INTERVAL,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=max_tasks,
        worker_id=worker_id,
        excluded_queue_names=[],
    )
    if handle_signals:
        worker.configure_signals()
    logger.info("worker %s started", worker_id)
    try:
        worker.run()
    finally:
        heartbeat.stop()
        logger.info("worker %s stopped", worker_id)
