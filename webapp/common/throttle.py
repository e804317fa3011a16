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

Limits: ``FIPO_LOGIN_MAX_ATTEMPTS`` failures per (ip, username), 5x that per ip, and
``FIPO_LOGIN_MAX_PER_USERNAME`` per username from all addresses together (an attacker rotating
addresses still gets only that many guesses at one account) within ``FIPO_LOGIN_WINDOW_S`` seconds.

The client address is ``REMOTE_ADDR``; ``X-Forwarded-For`` is believed only when the connection
comes from a proxy listed in ``FIPO_TRUSTED_PROXIES`` (then the address is the right-most entry that
is not one of those proxies). Anyone can send that header, so a server that trusted it from
everyone (daphne ``--proxy-headers``) would let each guess come from a new "address".

The admin's login page gets the same throttle through ``throttle_login_posts`` (see webapp/urls.py).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.forms.utils import ErrorDict
from django.http import HttpRequest, HttpResponse

_PER_IP_FACTOR = 5


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
    if address is None:
        return False
    for entry in settings.FIPO_TRUSTED_PROXIES:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_ip(request: Any) -> str:
    """The client's address: ``REMOTE_ADDR``, or behind a trusted proxy the right-most untrusted
    ``X-Forwarded-For`` entry (entries left of it were written by the client and prove nothing)."""
    meta = getattr(request, "META", {})
    remote = str(meta.get("REMOTE_ADDR") or "unknown")
    if not _trusted(_address(remote)):
        return remote
    hops = [hop.strip() for hop in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return remote  # a malformed chain: count it against the proxy itself
        if not _trusted(address):
            return str(address)
    return remote


def _keys(request: Any, username: str) -> tuple[str, str, str]:
    # Hash the username so arbitrary input never becomes part of a cache key verbatim.
    user_part = hashlib.sha256(username.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]
    ip = client_ip(request)
    return f"fipo:login:{ip}:{user_part}", f"fipo:login-ip:{ip}", f"fipo:login-user:{user_part}"


def _limits() -> tuple[int, int, int]:
    per_user = settings.FIPO_LOGIN_MAX_ATTEMPTS
    return per_user, per_user * _PER_IP_FACTOR, settings.FIPO_LOGIN_MAX_PER_USERNAME


def login_blocked(request: Any, username: str) -> int:
    """Seconds the caller must wait before trying again (0 = allowed)."""
    keys = _keys(request, username)
    counts = cache.get_many(list(keys))
    if any(counts.get(key, 0) >= limit for key, limit in zip(keys, _limits(), strict=True)):
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


def throttle_login_posts(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The throttle around any login view that logs the user in on a correct POST (the admin's):
    a blocked POST gets 429 without its password being checked; a POST that leaves the user
    logged out counts as a failure."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        username = str(request.POST.get("username", ""))
        wait = login_blocked(request, username)
        if wait:
            response = HttpResponse(f"Too many failed attempts. Try again in {wait} seconds.", status=429,
                                    content_type="text/plain; charset=utf-8")
            response["Retry-After"] = str(wait)
            return response
        response = view(request, *args, **kwargs)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.get_username() == username:
            login_succeeded(request, username)
        else:
            login_failed(request, username)
        return response

    return wrapped


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
