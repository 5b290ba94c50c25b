from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Cross-cutting machinery of the service (no models, and no import of a domain app:
    the import contracts in pyproject.toml fail lint otherwise)."""

    name = "core"
    verbose_name = "Core"
