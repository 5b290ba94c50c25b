"""HTTP endpoints through Django's full middleware stack (ASGI test client)."""

import pytest
from django.test import AsyncClient, Client, override_settings

from tests.app.app_process import load_settings_and_run
from tests.clients import HELLO_BODY


def test_hello_answers_the_documented_message_byte_for_byte(client: Client) -> None:
    response = client.get("/api/hello/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.content == HELLO_BODY


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


def test_unknown_path_under_api_is_a_json_404_and_elsewhere_a_page(client: Client) -> None:
    api = client.get("/api/rooms/not a slug/")  # matches no URL pattern: Django's handler404
    assert api.status_code == 404
    assert api.json() == {"detail": "Not found."}
    page = client.get("/no-such-page/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")


def test_openapi_schema_describes_hello_and_the_error_answers(client: Client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/hello/" in paths
    post_message = paths["/api/rooms/{slug}/messages/"]["post"]["responses"]
    assert {"201", "400", "401", "403", "404", "413", "429", "503"} <= post_message.keys()
    assert "404" not in paths["/api/hello/"]["get"]["responses"]  # no parameters, nothing to miss


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
        DJANGO_ADMIN_URL="staff-area/",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "absent"
