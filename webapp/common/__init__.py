"""Shared pieces of the web app: the error shape and its exception handler, auth classes, throttles."""
