"""Celery tasks of the lifecycle app (autodiscovered through this package)."""

from lifecycle.tasks.pool import *  # noqa: F403
from lifecycle.tasks.recompute import *  # noqa: F403
