"""Profiles, by username."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize(
    ("username", "image"),
    [("jake", "/img/jake.png"), ("ada-lovelace", "/img/ada.png"), ("linus_t", "/img/linus.png")],
)
def test_profile_image(client: TestClient, username: str, image: str) -> None:
    response = client.get(f"/api/profiles/{username}")
    assert response.status_code == 200
    assert response.json()["profile"]["image"] == image


def test_profile_is_as_registered(client: TestClient) -> None:
    response = client.get("/api/profiles/ada-lovelace")
    assert response.status_code == 200
    assert response.json() == {
        "profile": {"username": "ada-lovelace", "bio": "Analyst", "image": "/img/ada.png"}
    }


def test_unknown_profile_is_404(client: TestClient) -> None:
    assert client.get("/api/profiles/nobody-here").status_code == 404
