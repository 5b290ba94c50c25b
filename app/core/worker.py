"""The worker service: runs the tasks the web processes enqueue (docs/operations.md,
Background tasks).

The loop that claims and runs tasks is django-tasks-db's (`db_worker`: one task at a time,
claimed with SELECT ... FOR UPDATE SKIP LOCKED). Around it, what that loop leaves to its
user (written here, none of the maintained queues on Django's task API offers it; the
design notes say why):
- a heartbeat: a task whose worker went silent (kill -9, a lost host) runs again, up to
  TASK_MAX_ATTEMPTS runs in all, then is recorded as failed, within WORKER_LOST_AFTER;
- a Postgres outage pauses the worker instead of ending it; nothing queued is lost;
- housekeeping on a schedule, in one worker at a time: finished task rows are pruned,
  and the `housekeeping` signal lets domain apps prune their own (chat's old exports);
- one event loop for every channel-layer send from the worker (`group_send`);
- its metrics (METRICS_PORT): the tasks it ran (core/metrics.py) and the queue's state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from datetime import timedelta
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, connections, transaction
from django.db.models import Case, Count, F, Min, Q, When
from django.dispatch import Signal
from django.utils import timezone
from django.utils.crypto import get_random_string
from django_tasks_db.compat import TaskResultStatus, task_finished
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult, get_date_max
from prometheus_client.core import GaugeMetricFamily

from core import metrics
from core.groups import group_event
from core.models import WorkerHeartbeat
from core.probe import WORKER_HEALTH_FILE

logger = logging.getLogger(__name__)

# Sent (no arguments) once per WORKER_HOUSEKEEPING_INTERVAL by one worker at a time; a
# domain app connects a receiver that prunes its own old rows.
housekeeping = Signal()

# pg_try_advisory_xact_lock's key for housekeeping: one worker at a time.
HOUSEKEEPING_LOCK = 0x6D6B_686B  # "mkhk"


class WorkerLost(Exception):
    """The worker running a task went silent (killed, or its host lost) too many times."""


# --- Channel-layer sends from sync code ----------------------------------------------------


class ChannelLayerThread:
    """One event loop in a thread of its own, with a channel layer of its own, for every
    channel-layer send from sync code outside the web server's loop (tasks).

    async_to_sync outside an event loop starts a new loop per call, and channels_redis
    keeps its Redis connections per loop: a new connection for every send
    (django/channels_redis#125) and "Event loop is closed" once a loop is gone (#332).
    One loop that lives as long as the process keeps one pool of connections, and a layer
    instance of its own that no other loop closes."""

    _lock = threading.Lock()
    _started: tuple[asyncio.AbstractEventLoop, Any] | None = None

    @classmethod
    def loop_and_layer(cls) -> tuple[asyncio.AbstractEventLoop, Any]:
        with cls._lock:
            if cls._started is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="channel-layer", daemon=True).start()
                cls._started = (loop, channel_layers.make_backend(DEFAULT_CHANNEL_LAYER))
            return cls._started

    @classmethod
    def group_send(cls, group: str, message: dict[str, Any], timeout: float = 30) -> None:
        loop, layer = cls.loop_and_layer()
        asyncio.run_coroutine_threadsafe(layer.group_send(group, group_event(group, message)), loop).result(timeout)


def group_send(group: str, message: dict[str, Any]) -> None:
    """Send to a channel-layer group from a task (or any sync code outside a web request)."""
    ChannelLayerThread.group_send(group, message)


# --- Heartbeat, lost tasks, housekeeping ---------------------------------------------------


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


def run_housekeeping() -> bool:
    """Prune finished task rows and send `housekeeping`, unless another worker is at it.
    Returns whether this worker did it."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [HOUSEKEEPING_LOCK])
            (locked,) = cursor.fetchone()
        if not locked:
            return False
        cutoff = timezone.now() - timedelta(days=settings.TASK_RESULT_RETENTION_DAYS)
        pruned, _ = DBTaskResult.objects.finished().filter(finished_at__lt=cutoff).delete()
        if pruned:
            logger.info("housekeeping: %d finished task rows older than %s pruned", pruned, cutoff)
        housekeeping.send(sender=run_housekeeping)
    return True


# --- Metrics ------------------------------------------------------------------------------


class TaskQueueCollector:
    """The queue as Postgres holds it, read at each scrape: tasks due and waiting, tasks
    running, and how long the oldest due one has waited. Every worker replica reports the
    same values (max() over them in PromQL); Postgres unreachable, none."""

    def collect(self) -> Any:
        now = timezone.now()
        due = Q(status=TaskResultStatus.READY) & (Q(run_after=get_date_max()) | Q(run_after__lte=now))
        # Due since it was enqueued, or since its run_after if it had one.
        due_since = Case(When(run_after=get_date_max(), then=F("enqueued_at")), default=F("run_after"))
        try:
            state = DBTaskResult.objects.filter(
                status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING]
            ).aggregate(
                queued=Count("id", filter=due),
                running=Count("id", filter=Q(status=TaskResultStatus.RUNNING)),
                oldest=Min(due_since, filter=due),
            )
        except DatabaseError as error:
            logger.warning("metrics: the task queue is not readable: %s", error)
            return
        finally:
            connections.close_all()  # this scrape's thread ends here
        yield GaugeMetricFamily("app_tasks_queued", "Tasks due to run and not yet claimed.", value=state["queued"])
        yield GaugeMetricFamily("app_tasks_running", "Tasks a worker is running now.", value=state["running"])
        age = (now - state["oldest"]).total_seconds() if state["oldest"] else 0.0
        yield GaugeMetricFamily(
            "app_tasks_oldest_queued_age_seconds", "How long the oldest due task has waited (0: none waits).", value=age
        )


# Counted wherever a task ends: in the task loop, and in recover_lost_tasks.
task_finished.connect(metrics.record_task_finished, dispatch_uid="core.metrics.record_task_finished")


def serve_metrics() -> None:
    if not settings.METRICS_PORT:
        return
    try:
        metrics.serve(settings.METRICS_PORT, TaskQueueCollector())
    except OSError as error:  # taken: run the tasks all the same
        logger.error("metrics not served: METRICS_PORT %s: %s", settings.METRICS_PORT, error)


# --- The task loop --------------------------------------------------------------------------


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
