"""WebSocket URL routing: each app's routes, then a catch-all that answers unknown paths
with close code 4404 instead of an error in the server log."""

from django.urls import re_path

from chat.routing import websocket_urlpatterns as chat_patterns
from core.websocket import NotFoundConsumer
from demo.routing import websocket_urlpatterns as demo_patterns

websocket_urlpatterns = [
    *demo_patterns,
    *chat_patterns,
    re_path(r"", NotFoundConsumer.as_asgi()),
]
