from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CoreConfig(AppConfig):
    """Cross-cutting machinery of the service (no domain data: its one model is the worker
    service's heartbeat; and no import of a domain app: the import contracts in
    pyproject.toml fail lint otherwise)."""

    default = True  # of the two configurations here, the one `"core"` in INSTALLED_APPS means
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        # checks and openapi register the system checks and the schema's token scheme.
        from core import checks, error_tracking, openapi  # noqa: F401, PLC0415

        error_tracking.init()


class AdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with the login throttle of core.auth on its site."""

    default = False  # named in full in INSTALLED_APPS, in place of django.contrib.admin
    default_site = "core.auth.ThrottledAdminSite"
