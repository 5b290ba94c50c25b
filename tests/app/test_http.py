"""HTTP endpoints through Django's full middleware stack (ASGI test client)."""

import pytest
from django.test import AsyncClient, Client, override_settings

from tests.app.test_settings_env import load_settings_and_run
from tests.support import SEED_HELLO_BODY


def test_hello_answers_the_seed_message_byte_for_byte(client: Client) -> None:
    response = client.get("/api/hello/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.content == SEED_HELLO_BODY


def test_hello_refuses_writes(client: Client) -> None:
    assert client.post("/api/hello/", {}).status_code == 405


def test_liveness_answers_without_a_database_or_allowed_host(client: Client) -> None:
    # No `db` fixture: pytest-django blocks database access, so a query would fail here.
    response = client.get("/healthz", HTTP_HOST="not-an-allowed-host.example")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_readiness_reports_postgres_and_redis_ok() -> None:
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_readiness_names_redis_when_it_is_unreachable() -> None:
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = await AsyncClient().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"].startswith("error:")


def test_unknown_path_is_a_404(client: Client) -> None:
    assert client.get("/api/no-such-thing/").status_code == 404


def test_openapi_schema_describes_hello(client: Client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert "/api/hello/" in response.json()["paths"]


@pytest.mark.asyncio
async def test_diagnostic_sleep_holds_a_request_without_blocking() -> None:
    response = await AsyncClient().get("/api/diagnostics/sleep/?seconds=0.2")
    assert response.status_code == 200
    assert response.json() == {"slept": 0.2}
    assert (await AsyncClient().get("/api/diagnostics/sleep/?seconds=99")).status_code == 400
    assert (await AsyncClient().get("/api/diagnostics/sleep/?seconds=soon")).status_code == 400


def test_diagnostic_sleep_is_not_routed_in_production() -> None:
    result = load_settings_and_run(
        "from django.urls import resolve, Resolver404\n"
        "try:\n    resolve('/api/diagnostics/sleep/')\nexcept Resolver404:\n    print('absent')",
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY="p" * 50,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "absent"
