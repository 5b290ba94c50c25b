"""The task queue's state as Postgres holds it, served as metrics by each worker."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections
from django.db.models import Case, Count, F, Min, Q, When
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult, get_date_max
from prometheus_client.core import GaugeMetricFamily

from core import metrics

logger = logging.getLogger(__name__)


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


def serve_metrics() -> None:
    if not settings.METRICS_PORT:
        return
    try:
        metrics.serve(settings.METRICS_PORT, TaskQueueCollector())
    except OSError as error:  # taken: run the tasks all the same
        logger.error("metrics not served: METRICS_PORT %s: %s", settings.METRICS_PORT, error)
