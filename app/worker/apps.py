from django.apps import AppConfig


class WorkerConfig(AppConfig):
    """The worker service (its loop runs in `manage.py run_worker`); installed in every
    process, as any process may finish a task (the immediate backend in tests)."""

    name = "worker"
    verbose_name = "Worker service"

    def ready(self) -> None:
        from django_tasks.signals import task_finished  # noqa: PLC0415

        from core import metrics  # noqa: PLC0415

        task_finished.connect(metrics.record_task_finished, dispatch_uid="core.metrics.record_task_finished")
