"""``nextmove serve`` without ``--book`` or ``--playbook`` serves the store's run under the playbook it was made with,
found in its book's folder; where that playbook cannot be found, the start-up line says no run is served and why."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.api.conftest import free_port, seed_run
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.playbook.loader import default_playbook_text, load_playbook
from nextmove.store import open_store

runner = CliRunner()


def _custom_playbook(folder: Path) -> Path:
    """The default playbook under another name (another hash), as ``folder/playbook.toml``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "playbook.toml"
    text = default_playbook_text()
    first = next(line for line in text.splitlines() if line.startswith("name = "))
    path.write_text(text.replace(first, 'name = "Meal-kit subscriptions"', 1), encoding="utf-8")
    return path


def _serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[str, str, list[str | None]]:
    """Run ``nextmove serve`` from ``tmp_path`` up to where uvicorn would start; its output and served runs."""
    import uvicorn

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda application, **_: started.append(application))
    monkeypatch.chdir(tmp_path)
    said = CliRunner().invoke(app, ["serve", "--port", str(free_port()), *args])
    served = []
    for application in started:
        services = application.state.services  # type: ignore[attr-defined]
        run = services.served_run()
        served.append(None if run is None else run.run_id)
        services.close()
    assert said.exit_code == 0, said.output
    return " ".join(said.stdout.split()), " ".join(said.stderr.split()), served


def test_serve_without_book_serves_a_run_under_the_playbook_of_its_book(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It served nothing ("serving no run yet"), and only /readyz said the run was made under another playbook.
    playbook = load_playbook(_custom_playbook(tmp_path / "book"))
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        seed_run(store, playbook, book_source="book")  # `nextmove run --book book`, from tmp_path
    out, _, served = _serve(tmp_path, monkeypatch, "--store", url)
    assert served == ["run-1"]
    assert "serving run run-1 under its playbook book/playbook.toml, found in its book's folder" in out


def test_serve_says_plainly_when_the_run_to_serve_was_made_under_another_playbook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _custom_playbook(tmp_path / "book")
    playbook = load_playbook(path)
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        seed_run(store, playbook, book_source="book")
    path.write_text(default_playbook_text().replace("Default", "Edited since", 1), encoding="utf-8")
    out, err, served = _serve(tmp_path, monkeypatch, "--store", url)
    assert served == [None]
    assert "serving no run: the store's run to serve, run-1, was made under another playbook than the server's" in out
    assert f"run run-1 was made under the playbook with hash {playbook.content_hash()}" in err
    assert "the server's is nextmove's built-in default" in err
    assert "Restart with --playbook FILE, the playbook that run used (or --book BOOK" in err
    # Where it looked, and why it did not take it.
    assert f"book/playbook.toml has changed since (hash {load_playbook(path).content_hash()})" in " ".join(err.split())


def test_serve_with_a_playbook_takes_it_and_names_it_when_the_run_is_another_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    playbook = load_playbook(_custom_playbook(tmp_path / "book"))
    other = tmp_path / "other.toml"
    other.write_text(default_playbook_text(), encoding="utf-8")
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        seed_run(store, playbook, book_source="book")
    out, err, served = _serve(tmp_path, monkeypatch, "--store", url, "--playbook", str(other))
    assert served == [None]  # the playbook given is the one used, never the run's
    assert "serving no run: the store's run to serve, run-1" in out
    assert f"the server's is {other} (hash" in err
