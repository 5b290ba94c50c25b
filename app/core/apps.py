from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CoreConfig(AppConfig):
    """Cross-cutting machinery of the service: no model, and no import of another app (the
    import contracts in pyproject.toml)."""

    default = True  # of the two configurations here, the one `"core"` in INSTALLED_APPS means
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        # checks and openapi register the system checks and the schema's token scheme.
        from django.core.signals import setting_changed  # noqa: PLC0415

        from core import checks, error_tracking, openapi, throttling  # noqa: F401, PLC0415

        error_tracking.init()
        setting_changed.connect(throttling.new_cache_settings, dispatch_uid="core.throttling.new_cache_settings")


class AdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with the login throttle of core.auth on its site."""

    default = False  # named in full in INSTALLED_APPS, in place of django.contrib.admin
    default_site = "core.auth.ThrottledAdminSite"
