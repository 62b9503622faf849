"""``pixelgrade.toml``: a project's settings, for every command, in one file.

Keys are option names without the dashes (``batch_size`` or ``batch-size``). Top-level keys
apply to every command that has the option; a ``[backfill]``, ``[watch]``... table applies to
that command only and wins over the top level::

    db = "postgresql://app@db.internal/shop"
    table = "photos"
    allow_host = ["images.internal"]

    [backfill]
    batch_size = 500
    rate = 50

The file fills in what the command line and the ``PIXELGRADE_*`` environment variables leave
unset (the context's ``default_map``): flags > environment > file > defaults. It is read from
``--config FILE``, else ``$PIXELGRADE_CONFIG``, else ``./pixelgrade.toml`` when it exists.
Secrets may be written in it, like in ``.env``; they are never printed (``pixelgrade config``
masks them).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import typer

#: The file read from the working directory when no ``--config`` is given.
PROJECT_FILE = "pixelgrade.toml"
#: Where the resolved file's path is kept in the command's context (for ``pixelgrade config``).
META_KEY = "pixelgrade.project_file"
#: Parameters that cannot come from the file.
NOT_FROM_FILE = frozenset({"config"})


class ProjectFileError(typer.BadParameter):
    """The settings file cannot be used; the message says where and what to change."""


def apply_project_file(ctx: typer.Context, param: typer.CallbackParam, value: Path | None
                       ) -> Path | None:
    """Eager ``--config`` callback: load the file and make it the command's defaults."""
    path = value if value is not None else _default_path()
    if path is None:
        return None
    if not path.is_file():
        raise ProjectFileError(f"settings file {path} does not exist; pass --config with an "
                               f"existing file, or create {PROJECT_FILE}")
    data = load(path)
    defaults = command_defaults(data, ctx.info_name or "", _parameter_names(ctx.command),
                                _every_parameter_name(ctx), path)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[META_KEY] = path
    return path


def _default_path() -> Path | None:
    candidate = Path.cwd() / PROJECT_FILE
    return candidate if candidate.is_file() else None


def load(path: Path) -> dict[str, Any]:
    """The file's table, or :class:`ProjectFileError` naming the line that is wrong."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProjectFileError(f"settings file {path} is not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectFileError(f"settings file {path} cannot be read: {exc}") from exc


def command_defaults(data: dict[str, Any], command: str, names: set[str],
                     every_name: set[str], path: Path) -> dict[str, Any]:
    """The values ``data`` gives to ``command`` (whose parameters are ``names``)."""
    defaults: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            continue
        name = _key(key)
        if name not in every_name:
            raise ProjectFileError(_unknown(path, key, None, every_name))
        if name in names:
            defaults[name] = value
    section = data.get(command)
    if isinstance(section, dict):
        for key, value in section.items():
            name = _key(key)
            if name not in names:
                raise ProjectFileError(_unknown(path, key, command, names))
            defaults[name] = value
    return defaults


def _key(key: str) -> str:
    return key.replace("-", "_")


def _unknown(path: Path, key: str, command: str | None, known: set[str]) -> str:
    where = f"[{command}]" if command else "the top level"
    return (f"settings file {path}: {key!r} in {where} is not an option"
            f"{' of ' + command if command else ' of any command'}; known: "
            f"{', '.join(sorted(known))}")


def is_option(param: Any) -> bool:
    """An option (not an argument) of a command."""
    return getattr(param, "param_type_name", None) == "option"


def _parameter_names(command: Any) -> set[str]:
    return {param.name for param in command.params
            if param.name and is_option(param)} - NOT_FROM_FILE


def _every_parameter_name(ctx: typer.Context) -> set[str]:
    """Option names of every command of the program (top-level keys may name any)."""
    root = ctx.find_root().command
    commands = getattr(root, "commands", None) or {ctx.info_name: ctx.command}
    names: set[str] = set()
    for command in commands.values():
        names |= _parameter_names(command)
    return names
