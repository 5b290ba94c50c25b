from django.urls import path
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.generic import TemplateView

from chat.views import (
    RoomDetailView,
    RoomExportCreateView,
    RoomExportDetailView,
    RoomExportDownloadView,
    RoomListCreateView,
    RoomMessagesView,
)

urlpatterns = [
    # The page sets the CSRF cookie, so a session-authenticated user can post from it.
    path("", ensure_csrf_cookie(TemplateView.as_view(template_name="chat/index.html")), name="chat-page"),
    path("api/rooms/", RoomListCreateView.as_view(), name="room-list"),
    path("api/rooms/<slug:slug>/", RoomDetailView.as_view(), name="room-detail"),
    path("api/rooms/<slug:slug>/messages/", RoomMessagesView.as_view(), name="room-messages"),
    path("api/rooms/<slug:slug>/exports/", RoomExportCreateView.as_view(), name="room-exports"),
    path("api/exports/<uuid:pk>/", RoomExportDetailView.as_view(), name="export-detail"),
    path("api/exports/<uuid:pk>/download/", RoomExportDownloadView.as_view(), name="export-download"),
]
