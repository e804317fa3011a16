"""The server side of the browser pages (no Chromium needed): every page needs a login, renders
its shell with the JSON bootstrap the ES modules read, and plotly.js is served from the plotly
package with long-lived caching."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from webapp.dashboard.assets import plotly_js_path, plotly_js_version

pytestmark = pytest.mark.django_db

PAGES = ["/runs/", "/runs/new/", "/runs/7/", "/runs/7/samples/?step=3&sample=9", "/compare/?runs=1,2",
         "/leaderboards/aime-2024/", "/leaderboards/entries/3/?vs=4", "/leaderboards/compare/?a=1&b=2"]


def bootstrap_of(response: Any) -> dict[str, Any]:
    match = re.search(r'<script id="bootstrap" type="application/json">(.*?)</script>', response.content.decode())
    assert match, "the page has no JSON bootstrap"
    return json.loads(match.group(1))


@pytest.mark.parametrize("url", PAGES)
def test_pages_need_a_login(client: Any, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("url", PAGES)
def test_pages_render_their_bootstrap(client: Any, member: Any, team: Any, url: str) -> None:
    client.force_login(member)
    response = client.get(url)
    assert response.status_code == 200
    boot = bootstrap_of(response)
    assert boot["user"] == "alice"
    assert boot["teams"] == [{"id": team.id, "name": "alpha", "role": "member"}]
    assert boot["csrf_token"]
    assert boot["plotly_url"] == f"/assets/plotly-{plotly_js_version()}.min.js"
    assert 'type="module"' in response.content.decode()


def test_page_parameters_reach_the_bootstrap(client: Any, member: Any) -> None:
    client.force_login(member)
    assert bootstrap_of(client.get("/runs/7/samples/?step=3&sample=9")).items() >= {"run_id": 7, "step": 3, "sample": 9}.items()
    assert bootstrap_of(client.get("/compare/?runs=4,2,4,x"))["run_ids"] == [4, 2]
    assert bootstrap_of(client.get("/runs/new/?from=12"))["clone_from"] == 12
    assert bootstrap_of(client.get("/leaderboards/aime-2024/?scope=global"))["scope"] == "global"
    assert bootstrap_of(client.get("/leaderboards/aime-2024/?scope=nonsense"))["scope"] == "team"
    assert bootstrap_of(client.get("/leaderboards/entries/3/?vs=4")).items() >= {"entry_id": 3, "vs": 4}.items()
    assert bootstrap_of(client.get("/leaderboards/compare/?a=1&b=x")).items() >= {"a": 1, "b": None}.items()


def test_index_and_leaderboard_redirects(client: Any, member: Any) -> None:
    client.force_login(member)
    assert client.get("/")["Location"] == "/runs/"
    assert client.get("/leaderboards/")["Location"] == "/leaderboards/aime-2024/"
    assert client.get("/leaderboards/bad name!/").status_code == 404


def test_login_page_logs_in_and_logout_is_post_only(client: Any, member: Any) -> None:
    member.set_password("pw")
    member.save()
    assert client.get("/login/").status_code == 200
    response = client.post("/login/", {"username": "alice", "password": "pw"})
    assert response.status_code == 302
    assert client.get("/runs/").status_code == 200
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert client.get("/runs/").status_code == 302


def test_plotly_is_served_from_the_package_with_caching(client: Any) -> None:
    url = f"/assets/plotly-{plotly_js_version()}.min.js"
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert "immutable" in response["Cache-Control"]
    body = b"".join(response.streaming_content)
    assert body == plotly_js_path().read_bytes()
    assert client.get(url, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    old = client.get("/assets/plotly-0.0.1.min.js")
    assert old.status_code == 302 and old["Location"] == url
