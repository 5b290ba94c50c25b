"""WSGI entry point, for HTTP-only servers (benchmarks compare it; WebSockets need ASGI).
It writes the same access line as the ASGI entry point (core.access_log)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mainkode_example.settings")

from core.access_log import WsgiAccessLog

application = WsgiAccessLog(get_wsgi_application())
