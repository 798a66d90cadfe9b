"""The wheel carries everything the package reads: every data file is declared, every package is found."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "nextmove"


def _declared(relative: Path, patterns: list[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("**/") and fnmatch.fnmatch(relative.name, pattern[3:]):
            return True
        if relative.as_posix() == pattern:
            return True
    return False


def test_every_data_file_of_the_package_is_declared_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["nextmove"]
    files = [p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"]
    assert files, "the package has data files (the default playbook, the report template)"
    missing = [str(p.relative_to(PACKAGE)) for p in files if not _declared(p.relative_to(PACKAGE), patterns)]
    assert not missing, f"not in [tool.setuptools.package-data], so left out of the wheel: {missing}"


def test_every_folder_with_python_is_a_package() -> None:
    # setuptools' packages.find only finds folders with an __init__.py; a module elsewhere would be left out.
    folders = {p.parent for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    loose = [str(f.relative_to(PACKAGE)) for f in folders if not (f / "__init__.py").is_file()]
    assert not loose, f"folders without __init__.py, left out of the wheel: {loose}"


def test_dependencies_are_pinned() -> None:
    # A clean clone installs whatever the registry holds that the requirements allow: a new major release
    # of a library, or a new linter that formats or flags differently, must not change what `make test` does.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = config["project"]
    runtime = [r.split(";")[0].strip() for r in project["dependencies"]]
    unbounded = [r for r in runtime if "<" not in r and "==" not in r]
    assert not unbounded, f"runtime dependencies without an upper bound: {unbounded}"
    tools = [r.split(";")[0].strip() for r in project["optional-dependencies"]["dev"]]
    loose = [r for r in tools if "==" not in r]
    assert not loose, f"dev tools not pinned to one version: {loose}"
