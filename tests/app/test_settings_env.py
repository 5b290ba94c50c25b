"""The settings refuse a missing or invalid variable at start, naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.app_process import load_settings, load_settings_and_run, run_in_app
from tests.sources import REQUIRED_VARIABLES

# Where each secret ends up in the settings.
SETTING_OF = {
    "DJANGO_SECRET_KEY": "SECRET_KEY",
    "POSTGRES_PASSWORD": "DATABASES['default']['PASSWORD']",
    "REDIS_PASSWORD": "REDIS_PASSWORD",
}


def test_the_test_environment_itself_loads() -> None:
    result = load_settings()
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", REQUIRED_VARIABLES)
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_missing_required_variable_is_named(name: str, how: str) -> None:
    result = load_settings(**{name: None if how == "unset" else ""})
    assert result.returncode != 0
    assert f"Environment variable {name} is required" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "expects"),
    [
        ("DJANGO_ENV", "staging", "expected one of production, local"),
        ("DJANGO_DEBUG", "maybe", "expected true or false"),
        ("DJANGO_SECRET_KEY", "short", "at least 32 characters"),
        ("POSTGRES_PORT", "five-four-three-two", "expected an integer"),
        ("POSTGRES_PORT", "70000", "between 1 and 65535"),
        ("DB_POOL_MAX_SIZE", "0", "at least 1"),
        ("DB_POOL_TIMEOUT", "soon", "expected a number"),
        ("REDIS_URL", "localhost:6379", "expected redis://"),
        ("DJANGO_ADMIN_URL", "/admin", "ending in '/'"),
        ("CHANNEL_LAYER_BACKEND", "memory", "expected one of core, pubsub"),
        ("DJANGO_HTTP_HANDLER", "threads", "expected one of wsgi, asgi"),
        ("CHANNEL_LAYER_MAX_CONNECTIONS", "many", "expected an integer"),
        ("AUTH_THROTTLE_RATE", "ten", "expected a count per period"),
        ("CHAT_SOCKET_POST_RATE", "20/fortnight", "expected a count per period"),
        ("METRICS_PORT", "-1", "between 0 and 65535"),
        ("SENTRY_DSN", "sentry.example.com/1", "Unsupported scheme"),
        ("SENTRY_SAMPLE_RATE", "2", "between 0.0 and 1.0"),
    ],
)
def test_invalid_variable_is_named_with_what_it_expects(name: str, value: str, expects: str) -> None:
    result = load_settings(**{name: value})
    assert result.returncode != 0
    assert f"Environment variable {name} is invalid" in result.stderr
    assert expects in result.stderr


@pytest.mark.parametrize(
    ("backend", "layer_class"), [("core", "RedisChannelLayer"), ("pubsub", "RedisPubSubChannelLayer")]
)
def test_channel_layer_backend_selects_the_redis_layer(backend: str, layer_class: str) -> None:
    result = load_settings_and_run(
        "from channels.layers import get_channel_layer\nprint(type(get_channel_layer()).__name__)",
        CHANNEL_LAYER_BACKEND=backend,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [layer_class]


def test_production_refuses_the_placeholder_secrets_of_env_example() -> None:
    result = load_settings(DJANGO_ENV="production", DJANGO_SECRET_KEY="change-me-" + "x" * 40)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY still holds the placeholder" in result.stderr


@pytest.mark.parametrize(("admin_url", "expects"), [(None, "is required"), ("admin/", "move the admin off 'admin/'")])
def test_production_moves_the_admin_off_the_path_scanners_try(admin_url: str | None, expects: str) -> None:
    result = load_settings(DJANGO_ENV="production", DJANGO_SECRET_KEY="p" * 50, DJANGO_ADMIN_URL=admin_url)
    assert result.returncode != 0
    assert "Environment variable DJANGO_ADMIN_URL" in result.stderr
    assert expects in result.stderr


def test_production_refuses_debug() -> None:
    real_secret = "p" * 50
    result = load_settings(DJANGO_ENV="production", DJANGO_SECRET_KEY=real_secret, DJANGO_DEBUG="true")
    assert result.returncode != 0
    assert "DJANGO_DEBUG is invalid" in result.stderr


def test_deploy_checks_pass_in_production_with_tls() -> None:
    """`manage.py check --deploy` with the production settings and TLS on: no warning
    (security.W004 is silenced there on purpose: nginx sends HSTS; see settings.py)."""
    result = run_in_app(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        DJANGO_ENV="production",
        DJANGO_HTTPS="true",
        DJANGO_SECRET_KEY="Zq8v-" + "".join(chr(65 + (i * 7) % 26) + str(i % 10) for i in range(30)),
        DJANGO_ADMIN_URL="staff-area/",
        POSTGRES_PASSWORD="a-real-postgres-password",
        REDIS_PASSWORD="a-real-redis-password",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_deploy_checks_flag_plain_http() -> None:
    # The gate is real: without TLS the same check reports the insecure settings.
    result = run_in_app(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY="Zq8v-" + "".join(chr(65 + (i * 7) % 26) + str(i % 10) for i in range(30)),
        DJANGO_ADMIN_URL="staff-area/",
        POSTGRES_PASSWORD="a-real-postgres-password",
        REDIS_PASSWORD="a-real-redis-password",
    )
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout


@pytest.mark.parametrize("name", ["DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD"])
def test_a_secret_can_come_from_a_file(name: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-from-a-file-" + "x" * 40 + "\n")  # the final newline is not part of it
    result = load_settings_and_run(
        f"from django.conf import settings\nprint(repr(settings.{SETTING_OF[name]}))",
        **{name: None, f"{name}_FILE": str(secret)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr("s3cr3t-from-a-file-" + "x" * 40)


@pytest.mark.parametrize(
    ("how", "expects"),
    [
        ("both", "DJANGO_SECRET_KEY and DJANGO_SECRET_KEY_FILE are both set"),
        ("missing", "cannot read"),
        ("empty", "is empty"),
    ],
)
def test_a_bad_secret_file_stops_the_process_naming_the_variable(how: str, expects: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    if how != "missing":
        secret.write_text("" if how == "empty" else "k" * 50)
    overrides: dict[str, str | None] = {"DJANGO_SECRET_KEY_FILE": str(secret)}
    if how != "both":
        overrides["DJANGO_SECRET_KEY"] = None
    result = load_settings(**overrides)
    assert result.returncode != 0
    assert expects in result.stderr


@pytest.mark.parametrize(("version", "warned"), [((3, 11, 7), True), ((3, 12, 0), False), ((3, 13, 5), False)])
def test_a_python_older_than_3_12_is_warned_about(version: tuple[int, int, int], warned: bool) -> None:
    from core.checks import python_version_check  # noqa: PLC0415 (needs Django set up)

    messages = python_version_check(version=version)
    assert [message.id for message in messages] == (["core.W001"] if warned else [])
