"""WSGI entry point, for HTTP-only servers (benchmarks compare it; WebSockets need ASGI)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mainkode_example.settings")

application = get_wsgi_application()
