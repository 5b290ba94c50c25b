"""The service's own HTTP endpoints: login and logout, the API schema and its docs page, and (local
mode only) the diagnostics. /healthz and /readyz are answered before routing
(core.health)."""

from django.conf import settings
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core.auth import LogoutAllView, LogoutView, ObtainTokenView
from core.diagnostics import sleep_view

urlpatterns = [
    path("api/auth/token/", ObtainTokenView.as_view(), name="auth-token"),
    path("api/auth/logout/", LogoutView.as_view(), name="auth-logout"),
    path("api/auth/logout-all/", LogoutAllView.as_view(), name="auth-logout-all"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its init script as a file: nginx's CSP allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
]
if settings.LOCAL_MODE:
    urlpatterns.append(path("api/diagnostics/sleep/", sleep_view, name="diagnostics-sleep"))
