"""HTTP URL routing. (/healthz and /readyz are answered by mainkode_example.health's
middleware, before routing.)"""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from mainkode_example.auth_views import ObtainTokenView
from mainkode_example.diagnostics import sleep_view

handler404 = "mainkode_example.api_errors.not_found"

urlpatterns = [
    # The page sets the CSRF cookie, so a session-authenticated user can post from it.
    path("", ensure_csrf_cookie(TemplateView.as_view(template_name="chat/index.html")), name="chat-page"),
    path("api/", include("chat.urls")),
    path("api/auth/token/", ObtainTokenView.as_view(), name="auth-token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its init script as a file: nginx's CSP allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path(settings.ADMIN_URL, admin.site.urls),
]
if settings.LOCAL_MODE:
    urlpatterns.append(path("api/diagnostics/sleep/", sleep_view, name="diagnostics-sleep"))
