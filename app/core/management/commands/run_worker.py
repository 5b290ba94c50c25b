"""`python manage.py run_worker`: the worker service's process (core/worker.py)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.worker import run


class Command(BaseCommand):
    help = "Run queued background tasks, with heartbeats, recovery of lost tasks and housekeeping."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-tasks",
            type=int,
            default=None,
            help="Exit after this many tasks (tests); default: run until stopped.",
        )

    def handle(self, *args: Any, max_tasks: int | None, **options: Any) -> None:
        run(max_tasks=max_tasks)
