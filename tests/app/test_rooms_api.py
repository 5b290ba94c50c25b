"""The rooms and messages REST API against the real Postgres: every endpoint, every error."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from chat.models import Message, Room

pytestmark = pytest.mark.django_db


# --- auth --------------------------------------------------------------------------------------


def test_token_endpoint_returns_a_new_token_of_the_user(api: APIClient, alice: User) -> None:
    response = api.post("/api/auth/token/", {"username": "alice", "password": "alice-password"}, format="json")
    assert response.status_code == 200
    assert set(response.json()) == {"token", "expiry"}
    token = response.json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    created = api.post("/api/rooms/", {"slug": "by-token", "title": "T"}, format="json")
    assert created.status_code == 201
    assert created.json()["created_by"] == "alice"


def test_token_endpoint_refuses_a_wrong_password(api: APIClient, alice: User) -> None:
    response = api.post("/api/auth/token/", {"username": "alice", "password": "wrong"}, format="json")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()


def test_token_endpoint_throttles_brute_force(api: APIClient, alice: User) -> None:
    statuses = [
        api.post("/api/auth/token/", {"username": "alice", "password": f"guess-{i}"}, format="json").status_code
        for i in range(12)
    ]
    assert statuses[:10] == [400] * 10
    assert statuses[10:] == [429, 429]
    # Even the right password is refused while throttled.
    right = api.post("/api/auth/token/", {"username": "alice", "password": "alice-password"}, format="json")
    assert right.status_code == 429


# --- rooms ---------------------------------------------------------------------------------------


def test_anyone_lists_rooms(api: APIClient, lobby: Room) -> None:
    response = api.get("/api/rooms/")
    assert response.status_code == 200
    assert [room["slug"] for room in response.json()["results"]] == ["lobby"]


def test_authenticated_user_creates_a_room(alice_api: APIClient) -> None:
    response = alice_api.post("/api/rooms/", {"slug": "general", "title": "General"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["slug"], body["title"], body["created_by"]) == ("general", "General", "alice")
    assert Room.objects.filter(slug="general", created_by__username="alice").exists()


def test_anonymous_user_cannot_create_a_room(api: APIClient) -> None:
    response = api.post("/api/rooms/", {"slug": "general", "title": "General"}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert not Room.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"slug": "lobby", "title": "Again"}, "slug"),  # taken
        ({"slug": "not a slug!", "title": "Bad"}, "slug"),
        ({"slug": "x" * 65, "title": "Long"}, "slug"),
        ({"slug": "no-title"}, "title"),
    ],
)
def test_invalid_room_gets_field_errors(alice_api: APIClient, lobby: Room, payload: dict[str, str], field: str) -> None:
    response = alice_api.post("/api/rooms/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_room_detail_and_unknown_room(api: APIClient, lobby: Room) -> None:
    assert api.get("/api/rooms/lobby/").json()["title"] == "The lobby"
    assert api.get("/api/rooms/nowhere/").status_code == 404


# --- messages --------------------------------------------------------------------------------------


def test_authenticated_user_posts_a_message(alice_api: APIClient, lobby: Room) -> None:
    response = alice_api.post("/api/rooms/lobby/messages/", {"body": "hello"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "room", "author", "body", "created_at"}
    assert (body["room"], body["author"], body["body"]) == ("lobby", "alice", "hello")
    assert Message.objects.get(pk=body["id"]).body == "hello"


@pytest.mark.parametrize(
    ("body", "expected_error"),
    [
        ("", "blank"),
        ("   ", "blank"),
        ("x" * 4001, "no more than 4000"),
        (12, "Not a valid string"),
        (None, "may not be null"),
    ],
)
def test_invalid_message_body_gets_a_field_error(
    alice_api: APIClient, lobby: Room, body: object, expected_error: str
) -> None:
    response = alice_api.post("/api/rooms/lobby/messages/", {"body": body}, format="json")
    assert response.status_code == 400
    assert expected_error in response.json()["body"][0]
    assert not Message.objects.exists()


def test_message_of_exactly_4000_characters_is_accepted(alice_api: APIClient, lobby: Room) -> None:
    assert alice_api.post("/api/rooms/lobby/messages/", {"body": "x" * 4000}, format="json").status_code == 201


def test_missing_body_field_is_named(alice_api: APIClient, lobby: Room) -> None:
    response = alice_api.post("/api/rooms/lobby/messages/", {}, format="json")
    assert response.status_code == 400
    assert response.json() == {"body": ["This field is required."]}


def test_malformed_json_is_a_400_that_says_so(alice_api: APIClient, lobby: Room) -> None:
    response = alice_api.post("/api/rooms/lobby/messages/", '{"body": "unclosed', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")
    assert not Message.objects.exists()


def test_posting_without_credentials_is_401(api: APIClient, lobby: Room) -> None:
    response = api.post("/api/rooms/lobby/messages/", {"body": "hi"}, format="json")
    assert response.status_code == 401


def test_forged_token_is_401(api: APIClient, lobby: Room, alice_token: str) -> None:
    api.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert api.post("/api/rooms/lobby/messages/", {"body": "hi"}, format="json").status_code == 401


def test_posting_to_an_unknown_room_is_404(alice_api: APIClient) -> None:
    assert alice_api.post("/api/rooms/nowhere/messages/", {"body": "hi"}, format="json").status_code == 404
    assert alice_api.get("/api/rooms/nowhere/messages/").status_code == 404


def test_session_auth_needs_csrf_and_then_posts(alice: User, lobby: Room) -> None:
    browser = Client(enforce_csrf_checks=True)
    assert browser.login(username="alice", password="alice-password")
    refused = browser.post("/api/rooms/lobby/messages/", {"body": "hi"}, content_type="application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    browser.get("/")  # the page sets the CSRF cookie
    csrf = browser.cookies["csrftoken"].value
    accepted = browser.post(
        "/api/rooms/lobby/messages/", {"body": "hi"}, content_type="application/json", HTTP_X_CSRFTOKEN=csrf
    )
    assert accepted.status_code == 201
    assert accepted.json()["author"] == "alice"


# --- history and catch-up ------------------------------------------------------------------------


@pytest.fixture
def hundred_and_twenty(lobby: Room, alice: User) -> list[int]:
    Message.objects.bulk_create(Message(room=lobby, author=alice, body=f"m{i}") for i in range(120))
    return list(Message.objects.filter(room=lobby).order_by("id").values_list("id", flat=True))


def test_history_pages_newest_first_each_oldest_to_newest(api: APIClient, hundred_and_twenty: list[int]) -> None:
    first = api.get("/api/rooms/lobby/messages/").json()
    assert [m["id"] for m in first["results"]] == hundred_and_twenty[-50:]
    second = api.get(first["next"]).json()
    assert [m["id"] for m in second["results"]] == hundred_and_twenty[-100:-50]
    third = api.get(second["next"]).json()
    assert [m["id"] for m in third["results"]] == hundred_and_twenty[:20]
    assert third["next"] is None


def test_after_catches_up_oldest_first_across_pages(api: APIClient, hundred_and_twenty: list[int]) -> None:
    after = hundred_and_twenty[9]
    seen: list[int] = []
    url: str | None = f"/api/rooms/lobby/messages/?after={after}"
    while url:
        page = api.get(url).json()
        seen += [m["id"] for m in page["results"]]
        url = page["next"]
    assert seen == hundred_and_twenty[10:]


def test_after_the_last_message_is_empty(api: APIClient, hundred_and_twenty: list[int]) -> None:
    page = api.get(f"/api/rooms/lobby/messages/?after={hundred_and_twenty[-1]}").json()
    assert page["results"] == []


def test_after_must_be_a_number(api: APIClient, lobby: Room) -> None:
    response = api.get("/api/rooms/lobby/messages/?after=yesterday")
    assert response.status_code == 400
    assert "after" in response.json()


def test_messages_of_other_rooms_stay_out(api: APIClient, lobby: Room, alice: User) -> None:
    other = Room.objects.create(slug="other", title="Other")
    Message.objects.create(room=other, author=alice, body="elsewhere")
    Message.objects.create(room=lobby, author=alice, body="here")
    assert [m["body"] for m in api.get("/api/rooms/lobby/messages/").json()["results"]] == ["here"]


# --- pages ---------------------------------------------------------------------------------------


def test_chat_page_loads_its_script(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert b'src="/static/chat/chat.js"' in response.content


def test_api_docs_page_uses_our_own_swagger_files(client: Client) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/" in response.content
    assert b"cdn.jsdelivr" not in response.content


def test_schema_documents_every_endpoint(client: Client) -> None:
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    assert {
        "/api/hello/",
        "/api/rooms/",
        "/api/rooms/{slug}/",
        "/api/rooms/{slug}/messages/",
        "/api/auth/token/",
    } <= set(paths)


def test_admin_lives_at_the_configured_path(client: Client, settings: object) -> None:
    assert client.get("/admin/login/").status_code == 200
