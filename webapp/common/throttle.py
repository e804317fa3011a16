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

Limits: ``FIPO_LOGIN_MAX_ATTEMPTS`` failures per (ip, username) and 5x that per ip within
``FIPO_LOGIN_WINDOW_S`` seconds.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.cache import cache

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
