from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        from django_tasks.signals import task_finished  # noqa: PLC0415

        from chat import exports, tasks  # noqa: PLC0415
        from worker.signals import housekeeping  # noqa: PLC0415

        task_finished.connect(tasks.record_failure, dispatch_uid="chat.tasks.record_failure")
        housekeeping.connect(exports.prune, dispatch_uid="chat.exports.prune")
