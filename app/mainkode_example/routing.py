"""WebSocket URL routing: each app's routes, then a catch-all that answers unknown paths
with close code 4404 instead of an error in the server log."""

from django.urls import re_path

from chat.routing import websocket_urlpatterns as chat_patterns
from mainkode_example.ws_not_found import NotFoundConsumer

websocket_urlpatterns = [
    *chat_patterns,
    re_path(r"", NotFoundConsumer.as_asgi()),
]
