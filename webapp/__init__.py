"""webapp: the Django project of the FIPO control plane (settings, urls, asgi, one app per domain)."""
