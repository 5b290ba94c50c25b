from django.urls import path

from chat.views import HelloView, RoomDetailView, RoomListCreateView, RoomMessagesView

urlpatterns = [
    path("hello/", HelloView.as_view(), name="hello"),
    path("rooms/", RoomListCreateView.as_view(), name="room-list"),
    path("rooms/<slug:slug>/", RoomDetailView.as_view(), name="room-detail"),
    path("rooms/<slug:slug>/messages/", RoomMessagesView.as_view(), name="room-messages"),
]
