"""Accounts: who is logged in, and signing up."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient


def test_current_user_is_the_one_logged_in(client: TestClient) -> None:
    response = client.get("/api/user")
    assert response.status_code == 200
    assert response.json() == {
        "user": {
            "username": "jake",
            "email": "jake@example.com",
            "bio": "I work at statefarm",
            "image": "/img/jake.png",
        }
    }


def test_current_user_needs_a_token(client: TestClient) -> None:
    response = client.get("/api/user", headers={"Authorization": "Token nope"})
    assert response.status_code == 401


@pytest.mark.parametrize("username", ["grace", "barbara-liskov"])
def test_register(client: TestClient, username: str) -> None:
    email = f"{username}+{uuid.uuid4().hex[:8]}@example.com"
    user = {"user": {"username": username, "email": email, "password": "s3cret-enough"}}
    response = client.post("/api/users", json=user)
    assert response.status_code == 201
    assert response.json()["user"]["username"] == username


def test_register_needs_an_email(client: TestClient) -> None:
    response = client.post("/api/users", json={"user": {"username": "x", "password": "y"}})
    assert response.status_code == 422
