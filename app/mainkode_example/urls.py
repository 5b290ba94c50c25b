"""HTTP URL routing. (/healthz and /readyz are answered by mainkode_example.health's
middleware, before routing.)"""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from mainkode_example.admin_path import ADMIN_URL_PREFIX

urlpatterns = [
    path("api/", include("chat.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path(ADMIN_URL_PREFIX, admin.site.urls),
]
