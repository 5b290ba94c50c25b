from django.urls import re_path

from chat.consumers import StoredRoomConsumer

websocket_urlpatterns = [
    re_path(r"^ws/rooms/(?P<slug>[-a-zA-Z0-9_]{1,64})/$", StoredRoomConsumer.as_asgi()),
]
