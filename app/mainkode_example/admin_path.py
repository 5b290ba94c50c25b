"""Where the Django admin lives: DJANGO_ADMIN_URL (e.g. `admin/`), so a deployment can move
it off the path every scanner tries first."""

import re

from django.core.exceptions import ImproperlyConfigured

from mainkode_example import env

ADMIN_URL_PREFIX = env.string("DJANGO_ADMIN_URL", default="admin/")
if not re.fullmatch(r"([A-Za-z0-9_-]+/)+", ADMIN_URL_PREFIX):
    raise ImproperlyConfigured(
        "Environment variable DJANGO_ADMIN_URL is invalid: expected path segments ending in '/', e.g. 'admin/'."
    )
