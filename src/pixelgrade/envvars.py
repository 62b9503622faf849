"""Settings read from the environment, else from ``./.env`` (python-dotenv's format): the rule
every command uses for its secrets and connection settings (``DATABASE_URL``,
``PIXELGRADE_API_TOKEN``, ``PIXELGRADE_WEBHOOK_SECRET``...)."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values


def read_variable(name: str, env_file: Path | None = None) -> str | None:
    """``name`` from the environment, else from ``env_file`` (default ``./.env``) when it
    exists; None when neither holds a non-empty value."""
    value = os.environ.get(name)
    if value:
        return value
    env_file = env_file or Path.cwd() / ".env"
    return (dotenv_values(env_file).get(name) or None) if env_file.is_file() else None
