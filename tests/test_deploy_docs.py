"""docs/deploy.md is copied by people into /etc/systemd/system and their shells: each systemd
unit in it passes ``systemd-analyze verify`` without a warning, and every ``pixelgrade``
command line in it (units, shell blocks, the Dockerfile) parses: its command and options exist.

``systemd-analyze`` comes from Debian's ``systemd`` package, installed with apt when missing
(as tests/e2e installs Chromium); when it cannot be had the unit test is skipped on a laptop and
FAILS in CI (``CI=true``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from pixelgrade.cli import app

DOC = Path(__file__).resolve().parents[1] / "docs" / "deploy.md"
#: Where the units expect pixelgrade; replaced by this venv's for ``verify`` (which checks
#: that the program exists).
INSTALLED = "/opt/pixelgrade/.venv/bin/pixelgrade"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(encoding="utf-8"),
                      re.S | re.M)


def units() -> dict[str, str]:
    """The doc's units by file name (each block's first line: ``# /etc/systemd/system/X``)."""
    found = {}
    for block in blocks("ini"):
        first = block.splitlines()[0]
        assert first.startswith("# /etc/systemd/system/"), first
        found[first.rsplit("/", 1)[1]] = block
    return found


def command_lines() -> list[list[str]]:
    """Every ``pixelgrade COMMAND ...`` in the doc, as arguments after ``pixelgrade``."""
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    lines: list[list[str]] = []
    texts = [line.split("=", 1)[1] for block in blocks("ini") for line in block.splitlines()
             if line.startswith("ExecStart=")]
    for block in blocks("sh"):
        texts.extend(re.sub(r"\\\n\s*", " ", block).splitlines())
    for block in blocks("dockerfile"):
        texts.extend(" ".join(shlex.quote(a) for a in json.loads(line.split(None, 1)[1]))
                     for line in block.splitlines() if line.startswith("CMD ["))
    for text in texts:
        words = shlex.split(text, comments=True)
        for at, word in enumerate(words[:-1]):
            if word.rsplit("/", 1)[-1] == "pixelgrade" and words[at + 1] in commands:
                lines.append(words[at + 1:])
    return lines


def test_the_doc_has_what_it_promises() -> None:
    assert set(units()) == {"pixelgrade-watch.service", "pixelgrade-serve.service",
                            "pixelgrade-hook.service"}
    for name, unit in units().items():
        for setting in ("Restart=on-failure", "KillMode=mixed", "KillSignal=SIGTERM",
                        "EnvironmentFile=/etc/pixelgrade/pixelgrade.env", "User=pixelgrade",
                        "NoNewPrivileges=yes", "ProtectSystem=strict"):
            assert setting in unit.splitlines(), f"{name} lacks {setting}"
    commands = {words[0] for words in command_lines()}
    assert {"watch", "serve", "hook"} <= commands
    assert blocks("yaml") and "scrape_configs" in blocks("yaml")[0]


@pytest.mark.parametrize("words", command_lines(), ids=lambda words: " ".join(words))
def test_every_command_line_parses(words: list[str], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no pixelgrade.toml of this checkout's
    group = typer.main.get_command(app)
    name, args = words[0], words[1:]
    command = group.commands[name]  # type: ignore[attr-defined]
    parent = group.context_class(group, info_name="pixelgrade")
    try:
        command.make_context(name, list(args), parent=parent)  # parses; runs nothing
    except Exception as exc:  # typer's own click: NoSuchOption, BadParameter...
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise AssertionError(f"`pixelgrade {' '.join(words)}` does not parse: {message}"
                             ) from exc


def systemd_analyze() -> str:
    """The ``systemd-analyze`` program, installed with apt when missing; skips (fails in CI)
    when it cannot be had."""
    found = shutil.which("systemd-analyze")
    if found:
        return found
    apt = shutil.which("apt-get")
    problem = "systemd-analyze is missing and cannot be installed here (needs root and apt-get)"
    if apt is not None and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends",
                                          "systemd"]):
            print(f"deploy docs: {' '.join(command)}", file=sys.stderr, flush=True)
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=900, check=False)
            if done.returncode != 0:
                problem = f"`{' '.join(command)}` failed: {done.stderr.strip()[-500:]}"
                break
        found = shutil.which("systemd-analyze")
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem}: `apt-get install -y systemd`")
    pytest.skip(problem)


def test_a_wrong_option_would_be_caught(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AssertionError, match="No such option: --metrics-prot"):
        test_every_command_line_parses(["watch", "--metrics-prot", "9108"], tmp_path,
                                       monkeypatch)
    with pytest.raises(AssertionError, match="Invalid value for '--log-format'"):
        test_every_command_line_parses(["serve", "--log-format", "xml"], tmp_path, monkeypatch)


@pytest.mark.parametrize("name", sorted(units()))
def test_each_unit_passes_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    analyze = systemd_analyze()
    pixelgrade = Path(sys.executable).with_name("pixelgrade")
    assert pixelgrade.exists(), pixelgrade
    unit = tmp_path / name
    unit.write_text(units()[name].replace(INSTALLED, str(pixelgrade)), encoding="utf-8")
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=120, check=False)
    # A bad value or an unknown key is only a warning (exit 0): any line about the unit fails.
    said = [line for line in (done.stdout + done.stderr).splitlines() if name in line]
    assert done.returncode == 0 and not said, done.stdout + done.stderr


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The check above is not vacuous: a misspelt setting is reported."""
    analyze = systemd_analyze()
    unit = tmp_path / "pixelgrade-watch.service"
    text = units()["pixelgrade-watch.service"].replace(
        INSTALLED, str(Path(sys.executable).with_name("pixelgrade")))
    unit.write_text(text.replace("KillMode=mixed", "KillMode=mixd"), encoding="utf-8")
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert "kill mode" in (done.stdout + done.stderr).lower()
