"""HTTP URL routing: each app's routes and the admin. (/healthz and /readyz are answered
by core.health's middleware, before routing.)"""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

handler404 = "core.api_errors.not_found"

urlpatterns = [
    path("", include("demo.urls")),
    path("", include("chat.urls")),
    path("", include("core.urls")),
    path(settings.ADMIN_URL, admin.site.urls),
]
