"""The CLI starts without its heavy parts: ``nextmove --help`` must not wait for LightGBM or SQLAlchemy."""

from __future__ import annotations

import inspect
import subprocess
import sys

from nextmove.cli.models import rollback_cmd
from nextmove.engine.online import POLICY_MODEL_KIND

HEAVY = ("lightgbm", "sklearn", "sqlalchemy", "scipy", "fastapi")


def test_importing_the_cli_leaves_the_heavy_libraries_unloaded() -> None:
    code = (
        "import sys; from nextmove.cli import app; "
        "app(['--help'], standalone_mode=False); "
        f"print('loaded=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = done.stdout.strip().splitlines()[-1].removeprefix("loaded=")
    assert loaded == "", f"`nextmove --help` imported {loaded}"


def test_rollback_defaults_to_the_kind_the_api_serves() -> None:
    assert inspect.signature(rollback_cmd).parameters["kind"].default == POLICY_MODEL_KIND


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "nextmove", "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("nextmove ")
