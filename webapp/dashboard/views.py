"""Page views: thin shells. Each renders a template with a small JSON bootstrap (the user, their
teams and roles, the CSRF token, the page's parameters); the page's ES module does the rest
through the REST API and the websockets, so the pages and the API can never disagree on access:
another team's run answers 404 to the page's first fetch and the page shows "not found".
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from webapp.accounts.selectors import team_list
from webapp.common.throttle import ThrottledLoginView
from webapp.common.utils import parse_int, parse_int_list
from webapp.dashboard.assets import plotly_js_path, plotly_js_version

_BENCHMARK = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def _teams(user: Any) -> list[dict[str, Any]]:
    """The user's teams and roles (what the filters and the new-run form offer)."""
    return [{"id": m.team_id, "name": m.team.name, "role": m.role} for m in team_list(user=user)]


def _page(request: HttpRequest, template: str, page: str, **params: Any) -> HttpResponse:
    boot = {
        "page": page,
        "user": request.user.get_username(),
        "teams": _teams(request.user),
        "csrf_token": get_token(request),
        "plotly_url": reverse("dashboard:plotly-js", kwargs={"version": plotly_js_version()}),
        **params,
    }
    return render(request, template, {"bootstrap": boot, "page": page, **params})


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return redirect("dashboard:runs")


class LoginView(ThrottledLoginView):
    """The login page, with the failed-password throttle of the API's token endpoint."""

    template_name = "dashboard/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST only (Django 5): the nav has a small form with the CSRF token."""


@login_required
@require_GET
def runs(request: HttpRequest) -> HttpResponse:
    return _page(request, "dashboard/runs.html", "runs")


@login_required
@require_GET
def run_new(request: HttpRequest) -> HttpResponse:
    return _page(request, "dashboard/run_new.html", "run_new", clone_from=parse_int(request.GET.get("from"), lo=1))


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    return _page(request, "dashboard/run_detail.html", "run", run_id=run_id)


@login_required
@require_GET
def run_samples(request: HttpRequest, run_id: int) -> HttpResponse:
    return _page(request, "dashboard/samples.html", "samples", run_id=run_id,
                 step=parse_int(request.GET.get("step"), lo=0), sample=parse_int(request.GET.get("sample"), lo=0))


@login_required
@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    ids = parse_int_list(request.GET.get("runs"))
    return _page(request, "dashboard/compare.html", "compare", run_ids=list(dict.fromkeys(ids))[:10])


DEFAULT_BENCHMARK = "aime-2024"


@require_GET
def leaderboards_index(request: HttpRequest) -> HttpResponse:
    return redirect("dashboard:leaderboard", benchmark=DEFAULT_BENCHMARK)


@login_required
@require_GET
def leaderboard(request: HttpRequest, benchmark: str) -> HttpResponse:
    if not _BENCHMARK.match(benchmark):
        raise Http404("unknown benchmark")
    scope = request.GET.get("scope", "team")
    return _page(request, "dashboard/leaderboard.html", "leaderboards", benchmark=benchmark,
                 scope=scope if scope in {"team", "global"} else "team")


@login_required
@require_GET
def leaderboard_entry(request: HttpRequest, entry_id: int) -> HttpResponse:
    """One entry's answers, problem by problem (``?vs=<entry>`` preselects the flipped filter)."""
    vs = request.GET.get("vs", "")
    return _page(request, "dashboard/entry.html", "leaderboards", entry_id=entry_id, vs=parse_int(vs, lo=1))


@login_required
@require_GET
def leaderboard_compare(request: HttpRequest) -> HttpResponse:
    """Two entries on one benchmark version: wins, losses, ties and the paired CI of B - A."""
    a, b = request.GET.get("a", ""), request.GET.get("b", "")
    return _page(request, "dashboard/entry_compare.html", "leaderboards", a=parse_int(a, lo=1), b=parse_int(b, lo=1))


@require_GET
def plotly_js(request: HttpRequest, version: str) -> HttpResponse:
    """The bundled plotly.min.js with a year of caching (the URL changes with the version)."""
    current = plotly_js_version()
    if version != current:
        return redirect("dashboard:plotly-js", version=current)
    etag = f'"plotly-{current}"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified(headers={"ETag": etag})
    response = FileResponse(plotly_js_path().open("rb"), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["ETag"] = etag
    return response
