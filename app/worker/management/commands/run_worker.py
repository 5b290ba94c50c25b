"""`python manage.py run_worker`: the worker service's process (worker/loop.py)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import autoreload

from worker.loop import run


class Command(BaseCommand):
    help = "Run queued background tasks, with heartbeats, recovery of lost tasks and housekeeping."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-tasks",
            type=int,
            default=None,
            help="Exit after this many tasks (tests); default: run until stopped.",
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            help="Restart when the code changes, as runserver does (development only: a task running then is cut).",
        )

    def handle(self, *args: Any, max_tasks: int | None, reload: bool, **options: Any) -> None:
        if reload:
            # The worker runs in a thread of the reloading process, which owns the signals.
            autoreload.run_with_reloader(run, max_tasks=max_tasks, handle_signals=False)
        else:
            run(max_tasks=max_tasks)
