"""worker: the Celery application and the launchers that start training jobs.

Dependency direction: webapp -> worker -> fipo_engine. Launchers know nothing of Django: they take
a ``LaunchSpec`` (ids, the config as JSON, the control-plane URL and a run token) and return a
handle; the web app's tasks load rows, call a launcher and record what it returned.
"""
