"""URL routes: the API under /api/v1/, the admin, and the dashboard pages when that app exists."""

from importlib.util import find_spec

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path

from webapp.common.schema import SchemaView
from webapp.common.throttle import throttle_login_posts


def _optional(module: str) -> bool:
    """True when another area's url module exists (so this file never blocks on it)."""
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def api_not_found(request: HttpRequest) -> JsonResponse:
    from webapp.common.errors import error_body

    return JsonResponse(error_body("not_found", f"no API route {request.path}"), status=404)


api_patterns = [
    path("", include("webapp.accounts.urls")),
    path("", include("webapp.runs.urls")),
    path("", include("webapp.tracking.urls")),
    path("schema/", SchemaView.as_view(), name="api-schema"),
]
if _optional("webapp.leaderboards.urls"):
    api_patterns.append(path("", include("webapp.leaderboards.urls")))
# Anything else under /api/v1/ is a 404 in the API's JSON error shape (not Django's HTML page, and not
# CommonMiddleware's APPEND_SLASH redirect, which cannot keep a POST body).
api_patterns.append(re_path(r"^", api_not_found))

urlpatterns = [
    path("api/v1/", include(api_patterns)),
    # The admin's login page with the password throttle (matched before the admin's own route).
    path("admin/login/", throttle_login_posts(admin.site.login)),
    path("admin/", admin.site.urls),
]

# The pages (/, /login/, /runs/<id>/, ...) belong to webapp.dashboard; mount them once it exists.
if _optional("webapp.dashboard.urls"):
    urlpatterns.append(path("", include("webapp.dashboard.urls")))
