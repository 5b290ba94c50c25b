from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        from django_tasks.signals import task_finished  # noqa: PLC0415

        from chat import exports  # noqa: PLC0415
        from core.worker import housekeeping  # noqa: PLC0415

        task_finished.connect(exports.record_failure, dispatch_uid="chat.exports.record_failure")
        housekeeping.connect(exports.prune, dispatch_uid="chat.exports.prune")
