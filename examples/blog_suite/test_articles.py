"""Articles, by slug, and the lists that find them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize(
    ("slug", "title"),
    [
        ("how-to-train-your-dragon", "How to train your dragon"),
        ("dragons-of-the-rust-belt", "Dragons of the rust belt"),
        ("welcome-to-rust", "Welcome to Rust"),
        ("why-fastapi", "Why FastAPI"),
    ],
)
def test_article_title(client: TestClient, slug: str, title: str) -> None:
    response = client.get(f"/api/articles/{slug}")
    assert response.status_code == 200
    assert response.json()["article"]["title"] == title


def test_article_is_as_published(client: TestClient) -> None:
    response = client.get("/api/articles/welcome-to-rust")
    assert response.status_code == 200
    assert response.json() == {
        "article": {
            "slug": "welcome-to-rust",
            "title": "Welcome to Rust",
            "description": "All about welcome to rust",
            "tagList": ["rust"],
            "author": "ada-lovelace",
        }
    }


def test_unknown_article_is_404(client: TestClient) -> None:
    assert client.get("/api/articles/no-such-slug").status_code == 404


@pytest.mark.parametrize("slug", ["how-to-train-your-dragon", "why-fastapi"])
def test_article_comments(client: TestClient, slug: str) -> None:
    response = client.get(f"/api/articles/{slug}/comments")
    assert response.status_code == 200
    assert [c["author"] for c in response.json()["comments"]] == ["jake"]


@pytest.mark.parametrize(("author", "count"), [("jake", 1), ("ada-lovelace", 2), ("linus_t", 1)])
def test_articles_by_author(client: TestClient, author: str, count: int) -> None:
    response = client.get("/api/articles", params={"author": author})
    assert response.status_code == 200
    assert response.json()["articlesCount"] == count


@pytest.mark.parametrize(("tag", "count"), [("dragons", 2), ("rust", 2), ("python", 1)])
def test_articles_by_tag(client: TestClient, tag: str, count: int) -> None:
    response = client.get("/api/articles", params={"tag": tag})
    assert response.status_code == 200
    assert response.json()["articlesCount"] == count


@pytest.mark.parametrize("tag", ["dragons", "rust", "python", "fastapi"])
def test_tag_is_listed(client: TestClient, tag: str) -> None:
    response = client.get("/api/tags")
    assert response.status_code == 200
    assert tag in response.json()["tags"]
