"""WebSocket routes of the chat app."""

from django.urls import re_path

from chat.consumers import EchoConsumer, RoomChatConsumer, RoomConsumer

# Channels group names allow ASCII letters, digits, '-', '_' and '.', under 100 characters.
ROOM_NAME_PATTERN = r"(?P<room>[A-Za-z0-9_.-]{1,64})"

websocket_urlpatterns = [
    re_path(r"^ws/chat/$", EchoConsumer.as_asgi()),
    re_path(rf"^ws/chat/{ROOM_NAME_PATTERN}/$", RoomChatConsumer.as_asgi()),
    # Stored rooms (chat.models.Room); an unknown slug closes with 4404.
    re_path(r"^ws/rooms/(?P<slug>[-a-zA-Z0-9_]{1,64})/$", RoomConsumer.as_asgi()),
]
