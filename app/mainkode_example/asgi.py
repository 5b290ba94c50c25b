"""ASGI entry point: `gunicorn mainkode_example.asgi:application -k uvicorn_worker.UvicornWorker`.

HTTP goes to Django (urls -> views): through its WSGI handler in a thread pool
(core.http_threads; the default) or its ASGI handler (DJANGO_HTTP_HANDLER=asgi). WebSocket
goes through the Origin policy and the session/auth middleware to the Channels routing
(routing -> consumers). The access log wraps both; metrics (core.metrics) count both unless
METRICS_ENABLED is off.
"""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mainkode_example.settings")

# Django must be set up (settings loaded, apps ready) before anything imports models,
# which the WebSocket routing below does.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from core.access_log import AccessLogMiddleware  # noqa: E402
from core.http_threads import ThreadedWsgiApp  # noqa: E402
from core.metrics import SocketMetricsMiddleware  # noqa: E402
from core.websocket import BrowserOriginValidator, SocketAuthMiddlewareStack  # noqa: E402
from mainkode_example.routing import websocket_urlpatterns  # noqa: E402

http_app = (
    django_asgi_app
    if settings.HTTP_HANDLER == "asgi"
    else ThreadedWsgiApp(get_wsgi_application(), threads=settings.HTTP_THREADS)
)

socket_app: Any = BrowserOriginValidator(SocketAuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
if settings.METRICS_ENABLED:
    socket_app = SocketMetricsMiddleware(socket_app, websocket_urlpatterns)

application = AccessLogMiddleware(ProtocolTypeRouter({"http": http_app, "websocket": socket_app}))
