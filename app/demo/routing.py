from django.urls import re_path

from demo.consumers import EchoConsumer, EphemeralRoomConsumer

# Channels group names allow ASCII letters, digits, '-', '_' and '.', under 100 characters.
ROOM_NAME_PATTERN = r"(?P<room>[A-Za-z0-9_.-]{1,64})"

websocket_urlpatterns = [
    re_path(r"^ws/chat/$", EchoConsumer.as_asgi()),
    re_path(rf"^ws/chat/{ROOM_NAME_PATTERN}/$", EphemeralRoomConsumer.as_asgi()),
]
