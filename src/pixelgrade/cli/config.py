"""``pixelgrade config``: every setting as the commands would see it, and where it came from.

The output is TOML: it can start a ``pixelgrade.toml``. Secrets are masked: a database URL's
password, and any setting whose name says it is a token, a key or a password.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from pixelgrade.cli.options import ConfigOpt, env_name
from pixelgrade.cli.project import META_KEY, NOT_FROM_FILE, apply_project_file, is_option
from pixelgrade.stores import configured_database, without_password

MASK = "***"
#: Commands whose settings are shown (the others have none worth a file).
SHOWN = ("backfill", "watch", "serve", "hook", "score", "verify", "init", "migrate")
#: Environment variables read outside the options, shown when set (values masked as needed).
OTHER_ENVIRONMENT = ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY",
                     "PIXELGRADE_API_TOKEN", "PIXELGRADE_WEBHOOK_SECRET")
_SECRET_WORDS = ("token", "key", "password", "secret")


def config_command(
    ctx: typer.Context,
    command: Annotated[str | None, typer.Argument(
        help=f"One command ({', '.join(SHOWN)}); default: all of them.",
        metavar="[COMMAND]")] = None,
    config: ConfigOpt = None,
) -> None:
    """Print the settings each command would use, with where each comes from: a flag's
    environment variable (PIXELGRADE_BATCH_SIZE...), pixelgrade.toml, or the default.

    The output is TOML, secrets masked: `pixelgrade config backfill > pixelgrade.toml`
    starts a settings file.
    """
    root = ctx.find_root()
    commands: dict[str, Any] = getattr(root.command, "commands", {})
    names = [command] if command else [name for name in SHOWN if name in commands]
    if command is not None and command not in commands:
        raise typer.BadParameter(f"no command {command!r}; one of: {', '.join(SHOWN)}")
    project = ctx.meta.get(META_KEY)
    print(f"# settings file: {project or 'none (no ./pixelgrade.toml, no --config)'}")
    database = configured_database()
    fallback = _mask("db", database) if database else "sqlite:///pixelgrade.db (the default)"
    print(f"# database when no --db / db setting names one: {fallback}")
    for variable in OTHER_ENVIRONMENT:
        if os.environ.get(variable):
            print(f"# {variable} is set: {_mask(variable, os.environ[variable])}")
    for name in names:
        print()
        print(f"[{name}]")
        for line in _command_lines(root, name, commands[name], config):
            print(line)


def _command_lines(root: typer.Context, name: str, command: Any,
                   config: Path | None) -> list[str]:
    """``key = value  # source`` for each option of ``command``."""
    sub = command.make_context(name, [], parent=root, resilient_parsing=True)
    for param in command.params:
        if param.name == "config":
            apply_project_file(sub, param, config)
    lines = []
    for param in command.params:
        if not is_option(param) or param.name in NOT_FROM_FILE or param.name is None:
            continue
        value, source = _resolve(sub, param)
        key = param.name
        if value is None or value == []:
            lines.append(f"# {key} =  # not set ({source})")
        else:
            lines.append(f"{key} = {_toml(_mask(key, value))}  # {source}")
    return lines


def _resolve(ctx: typer.Context, param: Any) -> tuple[Any, str]:
    """The value the option would take without flags, and where it comes from."""
    raw = param.resolve_envvar_value(ctx)
    if raw is not None:
        variable = next((v for v in _envvars(param) if os.environ.get(v)), env_name(
            param.opts[0]))
        return param.process_value(ctx, param.value_from_envvar(ctx)), \
            f"environment {variable}"
    if ctx.default_map and param.name in ctx.default_map:
        return param.process_value(ctx, ctx.default_map[param.name]), \
            f"file {ctx.meta.get(META_KEY)}"
    return param.get_default(ctx, call=True), "default"


def _envvars(param: Any) -> list[str]:
    if param.envvar is None:
        return []
    return [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)


def _mask(name: str, value: Any) -> Any:
    if isinstance(value, str):
        if any(word in name.lower() for word in _SECRET_WORDS):
            return MASK
        if "://" in value:
            return without_password(value, MASK)
    return value


def _toml(value: Any) -> str:
    """A TOML literal (strings, numbers, booleans, lists, paths)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)
