"""fipo_engine: the FIPO algorithm, its native trainer, evaluation and tracking client.

Pure Python + PyTorch. This package never imports Django: a training job must be able to run
on a machine with no web app and no database, and talks to the control plane only through the
HTTP tracking protocol (see ``fipo_engine.tracking``).
"""

__version__ = "0.1.0"
