"""Housekeeping, in one worker at a time: old finished task rows, then the domain apps'
own (the `housekeeping` signal)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from worker.signals import housekeeping

logger = logging.getLogger(__name__)

# pg_try_advisory_xact_lock's key for housekeeping: one worker at a time.
HOUSEKEEPING_LOCK = 0x6D6B_686B  # "mkhk"


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
