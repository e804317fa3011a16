"""A small cache-based throttle for password checks (the login page and the API token endpoint).

Why not DRF's throttles: the login page is a plain Django view (H6's), and what we limit is *failed*
password attempts per (client IP, username), plus a looser cap per IP, in a fixed window. The counter
lives in the default cache (Redis when ``REDIS_URL`` is set, so every web process shares it).

Usage in any view that checks a password::

    from webapp.common.throttle import login_blocked, login_failed, login_succeeded

    wait = login_blocked(request, username)
    if wait:
        ...answer 429 (error code "throttled"), with Retry-After: wait
    user = authenticate(request, username=username, password=password)
    if user is None:
        login_failed(request, username)
    else:
        login_succeeded(request, username)

or, for a page built on Django's ``LoginView``, subclass ``ThrottledLoginView`` instead.

Limits: ``FIPO_LOGIN_MAX_ATTEMPTS`` failures per (ip, username) and 5x that per ip within
``FIPO_LOGIN_WINDOW_S`` seconds.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.forms.utils import ErrorDict
from django.http import HttpRequest, HttpResponse

_PER_IP_FACTOR = 5


def _client_ip(request: Any) -> str:
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def _keys(request: Any, username: str) -> tuple[str, str]:
    # Hash the username so arbitrary input never becomes part of a cache key verbatim.
    user_part = hashlib.sha256(username.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]
    ip = _client_ip(request)
    return f"fipo:login:{ip}:{user_part}", f"fipo:login-ip:{ip}"


def _limits() -> tuple[int, int]:
    per_user = settings.FIPO_LOGIN_MAX_ATTEMPTS
    return per_user, per_user * _PER_IP_FACTOR


def login_blocked(request: Any, username: str) -> int:
    """Seconds the caller must wait before trying again (0 = allowed)."""
    user_key, ip_key = _keys(request, username)
    per_user, per_ip = _limits()
    counts = cache.get_many([user_key, ip_key])
    if counts.get(user_key, 0) >= per_user or counts.get(ip_key, 0) >= per_ip:
        return settings.FIPO_LOGIN_WINDOW_S
    return 0


def login_failed(request: Any, username: str) -> None:
    """Count one failed attempt (the window starts at the first failure)."""
    for key in _keys(request, username):
        cache.add(key, 0, timeout=settings.FIPO_LOGIN_WINDOW_S)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.FIPO_LOGIN_WINDOW_S)


def login_succeeded(request: Any, username: str) -> None:
    """A correct password clears the per-username counter (the per-IP one keeps counting down)."""
    cache.delete(_keys(request, username)[0])


class ThrottledLoginView(LoginView):
    """Django's ``LoginView`` with the throttle above: use it as the base class of the login page.

    A blocked client gets the form back with a non-field error and status 429 (the password is not
    even checked); each failed attempt counts; a success clears the username's counter.
    """

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = str(request.POST.get("username", ""))
        wait = login_blocked(request, username)
        if wait:
            form = self.get_form()
            # Mark the form as already validated, so rendering it never checks the password.
            form.cleaned_data = {}
            form._errors = ErrorDict()
            form.add_error(None, f"Too many failed attempts. Try again in {wait} seconds.")
            response = self.render_to_response(self.get_context_data(form=form), status=429)
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: Any) -> HttpResponse:
        login_failed(self.request, str(form.data.get("username", "")))
        return super().form_invalid(form)

    def form_valid(self, form: Any) -> HttpResponse:
        login_succeeded(self.request, form.get_user().get_username())
        return super().form_valid(form)
