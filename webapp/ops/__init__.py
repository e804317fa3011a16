"""ops: running the control plane's processes (``manage.py runstack``) and wiring the Celery app."""
