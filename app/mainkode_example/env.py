"""Read and validate environment variables.

django-environ does the parsing; this module only makes every failure say *which*
variable is wrong and *what* it expects, so a misconfigured container exits at start
with a message an operator can act on (django-environ's own errors name the variable
when it is missing, but not when it cannot be parsed).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

_env = environ.Env()
_NO_DEFAULT: Any = environ.Env.NOTSET


def _read[T](name: str, parse: Callable[..., T], expects: str, default: Any) -> T:
    # Set but empty is as good as unset: compose passes every optional knob as `${NAME:-}`,
    # so the default below, in code, is the only one.
    if not os.environ.get(name, "").strip():
        if default is _NO_DEFAULT:
            raise ImproperlyConfigured(f"Environment variable {name} is required ({expects}).")
        return default  # type: ignore[no-any-return]
    try:
        return parse(name)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"Environment variable {name} is invalid: expected {expects} ({exc}).") from None


def string(name: str, default: Any = _NO_DEFAULT, *, min_length: int = 0) -> str:
    value = str(_read(name, _env.str, "a string", default))
    if len(value) < min_length:
        raise ImproperlyConfigured(
            f"Environment variable {name} is invalid: expected at least {min_length} characters."
        )
    return value


def boolean(name: str, default: Any = _NO_DEFAULT) -> bool:
    raw = _read(name, _env.str, "true or false", default)
    if isinstance(raw, bool):
        return raw
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"Environment variable {name} is invalid: expected true or false, got {raw!r}.")


def integer(name: str, default: Any = _NO_DEFAULT, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = int(_read(name, _env.int, "an integer", default))
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ImproperlyConfigured(
            f"Environment variable {name} is invalid: expected an integer {bounds}, got {value}."
        )
    return value


def number(name: str, default: Any = _NO_DEFAULT, *, minimum: float = 0.0, maximum: float | None = None) -> float:
    value = float(_read(name, _env.float, "a number", default))
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ImproperlyConfigured(f"Environment variable {name} is invalid: expected a number {bounds}, got {value}.")
    return value


def strings(name: str, default: Any = _NO_DEFAULT) -> list[str]:
    values = [item.strip() for item in _read(name, _env.list, "a comma-separated list", default) if item.strip()]
    if not values and default is _NO_DEFAULT:  # set but empty is as good as missing
        raise ImproperlyConfigured(f"Environment variable {name} is required (a comma-separated list).")
    return values


def choice(name: str, options: tuple[str, ...], default: Any = _NO_DEFAULT) -> str:
    value = string(name, default)
    if value not in options:
        raise ImproperlyConfigured(
            f"Environment variable {name} is invalid: expected one of {', '.join(options)}, got {value!r}."
        )
    return value


def rate(name: str, default: Any = _NO_DEFAULT) -> str:
    """A count per period as DRF's throttles read it: `10/minute`, `20/s`."""
    value = string(name, default)
    if not re.fullmatch(r"[1-9][0-9]*/(second|minute|hour|day|[smhd])", value):
        raise ImproperlyConfigured(
            f"Environment variable {name} is invalid: expected a count per period like 10/minute, got {value!r}."
        )
    return value


PLACEHOLDER_MARK = "change-me"


def secret(name: str, *, allow_placeholder: bool, min_length: int = 1, required: bool = True) -> str:
    """A secret, from NAME or from the file NAME_FILE names (Docker and Kubernetes secrets
    are files), refused when it still holds the `.env.example` placeholder (unless the
    caller runs in the explicit local mode). Not `required`: empty means none."""
    value = _secret_from_file(name) if os.environ.get(f"{name}_FILE", "").strip() else None
    if value is None:
        value = string(name, min_length=min_length) if required else string(name, default="")
    elif len(value) < min_length:
        raise ImproperlyConfigured(
            f"Environment variable {name}_FILE is invalid: the file holds fewer than {min_length} characters."
        )
    if not value:
        return ""
    if PLACEHOLDER_MARK in value and not allow_placeholder:
        raise ImproperlyConfigured(
            f"Environment variable {name} still holds the placeholder from .env.example; "
            f"set a real secret, or DJANGO_ENV=local for a local try."
        )
    return value


def _secret_from_file(name: str) -> str:
    """The content of the file NAME_FILE names, without its final newline."""
    if os.environ.get(name, "").strip():
        raise ImproperlyConfigured(f"Environment variables {name} and {name}_FILE are both set: set one.")
    path = os.environ[f"{name}_FILE"].strip()
    try:
        with open(path, encoding="utf-8") as file:
            value = file.read().rstrip("\r\n")
    except OSError as error:
        raise ImproperlyConfigured(
            f"Environment variable {name}_FILE is invalid: cannot read {path} ({error.strerror})."
        ) from None
    if not value.strip():
        raise ImproperlyConfigured(f"Environment variable {name}_FILE is invalid: {path} is empty.")
    return value
