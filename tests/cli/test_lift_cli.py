"""``nextmove lift`` end to end: a run stored in SQLite, the lab answering it for a horizon, then the lift."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from tests.api.conftest import ended_process
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.decide.explore import assign_control
from nextmove.measure.policy import lifecycle_default_policy
from nextmove.playbook.loader import parse_playbook
from nextmove.sim import LabEnvironment, SimConfig
from nextmove.store import RecommendationRecord, RunRecord, open_store

runner = CliRunner()


@dataclass(frozen=True)
class Measured:
    book: Path
    store: str
    decided_at: datetime
    horizon_days: int


def _records(decisions: pl.DataFrame, truth: pl.DataFrame, objectives: dict[str, str]) -> list[RecommendationRecord]:
    """Receipts as the engine writes them; the projection is the lab's true effect of the model's action."""
    none = truth.filter(pl.col("action_id") == "none").select("account_id", *[f"p_{o}" for o in objectives.values()])
    effects = (
        decisions.join(truth, left_on=["account_id", "model_action_id"], right_on=["account_id", "action_id"])
        .join(none, on="account_id", suffix="_none")
        .with_columns([(pl.col(f"p_{o}") - pl.col(f"p_{o}_none")).alias(f"effect_{o}") for o in objectives.values()])
    )
    records = []
    for row in effects.iter_rows(named=True):
        projected = [
            {"objective": name, "outcome": outcome, "unit": "probability", "effect": row[f"effect_{outcome}"],
             "effect_usd": None}
            for name, outcome in objectives.items()
        ]  # fmt: skip
        records.append(
            RecommendationRecord(
                run_id="lab-run",
                account_id=row["account_id"],
                action_id=row["action_id"],
                arm=row["arm"],
                propensity=1.0,
                expected_value_usd=float(row["value_usd"]),
                evidence={"schema": 1, "model_action_id": row["model_action_id"], "projected": projected},
            )
        )
    return records


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Measured:
    """A run decided in the lab (oracle for the model arm, the default for control), stored, and answered."""
    env = LabEnvironment(SimConfig(accounts=600, months=2, seed=4))
    playbook = parse_playbook(env.history.playbook_text)
    accounts = env.book().accounts.filter(pl.col("lifecycle_stage") != "churned")
    ids = accounts.get_column("account_id").to_list()
    truth = env.true_values(ids)
    oracle = (
        truth.filter(pl.col("eligible"))
        .sort("value_usd", descending=True)
        .group_by("account_id", maintain_order=True)
        .first()
        .select("account_id", pl.col("action_id").alias("model_action_id"))
    )
    default = lifecycle_default_policy(accounts, playbook).select("account_id", pl.col("action_id").alias("default"))
    decisions = (
        pl.DataFrame({"account_id": ids, "arm": np.where(assign_control(ids, 0.4, seed=1), "control", "model")})
        .join(oracle, on="account_id")
        .join(default, on="account_id")
        .with_columns(
            pl.when(pl.col("arm") == "control")
            .then(pl.col("default"))
            .otherwise(pl.col("model_action_id"))
            .alias("action_id")
        )
    )
    event_objectives = {k: o.outcome for k, o in playbook.objectives.items() if o.value.value != "amount"}
    records = _records(decisions, truth, event_objectives)
    folder = tmp_path_factory.mktemp("lift")
    store = f"sqlite:///{(folder / 'nextmove.db').as_posix()}"
    decided_at = env.now
    with open_store(store) as opened:
        run = RunRecord(
            run_id="lab-run",
            book_source=str(folder / "book"),
            playbook_hash=playbook.content_hash(),
            status="succeeded",
            as_of=decided_at,
        )
        opened.save_run(run, records)
    env.step(decisions.select("account_id", "action_id", "arm", pl.lit(1.0).alias("propensity")))
    while env.now < decided_at + timedelta(days=playbook.horizon_days):
        env.step(pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String}))
    book = env.book()
    out = folder / "book"
    out.mkdir()
    for name in ("accounts", "signals", "touches", "outcomes"):
        getattr(book, name).write_parquet(out / f"{name}.parquet")
    (out / "playbook.toml").write_text(env.history.playbook_text, encoding="utf-8")
    return Measured(out, store, decided_at, playbook.horizon_days)


def test_cli_lift_measures_the_latest_run(measured: Measured, tmp_path: Path) -> None:
    out = tmp_path / "lift.json"
    result = runner.invoke(app, ["lift", "--book", str(measured.book), "--store", measured.store, "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Lift of the recommended cohort over control" in text
    assert "Per action: realised effect" in text
    # The window ends at a midnight, whose day it does not count: it said "to" that day.
    last = measured.decided_at + timedelta(days=measured.horizon_days - 1)
    assert f"outcomes over {measured.horizon_days} days through {last:%Y-%m-%d}." in text
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["run_id"] == "lab-run"
    assert report["complete"]
    assert report["as_of"] == measured.decided_at.isoformat()
    playbook = parse_playbook((measured.book / "playbook.toml").read_text(encoding="utf-8"))
    assert [o["objective"] for o in report["objectives"]] == list(playbook.objectives)
    assert set(report["arms"]) == {"control", "model"}
    for o in report["objectives"]:
        assert o["low"] <= o["high"]
        assert o["treated_accounts"] == report["arms"]["model"]
    value = report["value"]
    assert value["impact_usd"] == pytest.approx(value["lift_usd"] * report["arms"]["model"])

    # Dollars read as dollars: the value row's impact with its interval, the sign before the currency, signed as the
    # lift beside it is (a difference: "+$6,068", never "$6,068" beside "+$6,068").
    def usd(x: float) -> str:
        return f"{'-' if round(x) < 0 else '+' if round(x) > 0 else ''}${abs(x):,.0f}"

    # At 140 columns the cell may wrap after its comma.
    assert f"{usd(value['impact_usd'])} [{usd(value['impact_low_usd'])}," in text
    assert f" {usd(value['impact_high_usd'])}]" in text
    assert not re.search(r"\d \$", text)  # never "7 $"
    # The receipts projected the lab's true effects: most realised intervals hold them.
    checked = [a for a in report["actions"] if a["within_interval"] is not None]
    assert checked
    assert sum(a["within_interval"] for a in checked) >= 0.8 * len(checked)


def test_cli_lift_before_the_horizon_says_how_many_days_are_left(measured: Measured) -> None:
    # A date given to --until is that whole day, as run's --outcomes-until reads one (it was its midnight): the
    # date 29 days after the run's midnight is 30 days seen; its midnight, written as a time, 29.
    assert measured.decided_at == datetime.combine(measured.decided_at.date(), time(), tzinfo=UTC)
    early = (measured.decided_at + timedelta(days=29)).date().isoformat()
    args = ["lift", "--book", str(measured.book), "--store", measured.store, "--run", "lab-run", "--until", early]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert f"{measured.horizon_days - 30} days after" in " ".join(result.output.split())
    assert "measure what has been seen so far with --partial" in " ".join(result.output.split())
    assert "allow_partial" not in result.output  # the command's option, not the Python argument
    partial = runner.invoke(app, [*args, "--partial"])
    assert partial.exit_code == 0, partial.output
    assert "partial: 30 days seen" in partial.output
    args[-1] = f"{early}T00:00:00Z"
    at_midnight = runner.invoke(app, [*args, "--partial"])
    assert at_midnight.exit_code == 0, at_midnight.output
    assert "partial: 29 days seen" in at_midnight.output


def test_cli_lift_with_no_outcome_yet_gives_rate_intervals_in_dollars_too(measured: Measured, tmp_path: Path) -> None:
    """25 days after the run, before any outcome reached the book: the note says what the rows then mean."""
    book = tmp_path / "book"
    book.mkdir()
    for table in measured.book.iterdir():
        frame = pl.read_parquet(table) if table.suffix == ".parquet" else None
        if table.name == "outcomes.parquet" and frame is not None:
            frame = frame.filter(pl.col("ts") <= measured.decided_at)
        if frame is not None:
            frame.write_parquet(book / table.name)
        else:
            (book / table.name).write_bytes(table.read_bytes())
    until = (measured.decided_at + timedelta(days=25)).date().isoformat()
    out = tmp_path / "lift.json"
    args = ["lift", "--book", str(book), "--store", measured.store, "--run", "lab-run", "--until", until, "--partial"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "note: no outcome yet: the book holds none after the run's decision time" in text
    assert "the total value row is only the plays' cost so far" in text
    assert "[—, —]" not in text  # a point with dashes for its interval
    report = json.loads(out.read_text(encoding="utf-8"))
    for o in report["objectives"]:
        assert o["lift"] == 0.0
        # A rate with an interval has dollars with one; an amount nobody had has neither, and a note says why.
        assert (o["low"] is None) == (o["lift_usd_low"] is None) == (o["impact_low_usd"] is None)
        if o["low"] is None:
            assert any(n.startswith(f"{o['objective']}: no interval") for n in report["notes"])
            assert "(no interval)" in text


def test_cli_lift_notes_lagging_outcomes_with_the_commands_options(measured: Measured, tmp_path: Path) -> None:
    # The note said "pass observed_until (--until) … with allow_partial (--partial)": Python and CLI names mixed.
    book = tmp_path / "book"
    book.mkdir()
    for name in ("accounts", "signals", "touches"):
        (book / f"{name}.parquet").write_bytes((measured.book / f"{name}.parquet").read_bytes())
    (book / "playbook.toml").write_bytes((measured.book / "playbook.toml").read_bytes())
    outcomes = pl.read_parquet(measured.book / "outcomes.parquet")
    outcomes.filter(pl.col("ts") < measured.decided_at + timedelta(days=20)).write_parquet(book / "outcomes.parquet")
    result = runner.invoke(app, ["lift", "--book", str(book), "--store", measured.store, "--run", "lab-run"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert re.search(r"measure only what was seen: pass --until \S+ with --partial", text), text
    assert "observed_until" not in text
    assert "allow_partial" not in text
    # Once, in the lift's words: loading's note on the same outcomes (about learning, other dates) is not printed.
    assert text.count("the outcomes end") == 1, text
    assert "not learned from as finished" not in text


def test_cli_lift_errors_when_the_store_has_no_such_run(measured: Measured, tmp_path: Path) -> None:
    result = runner.invoke(app, ["lift", "--book", str(measured.book), "--store", measured.store, "--run", "nope"])
    assert result.exit_code == 4
    assert "no run 'nope'" in result.output
    assert "lab-run" in result.output
    empty = f"sqlite:///{(tmp_path / 'empty.db').as_posix()}"
    result = runner.invoke(app, ["lift", "--book", str(measured.book), "--store", empty])
    assert result.exit_code == 4
    assert "there is no store at" in " ".join(result.output.split())
    assert not (tmp_path / "empty.db").exists()  # reading does not leave an empty store behind
    open_store(empty).close()
    result = runner.invoke(app, ["lift", "--book", str(measured.book), "--store", empty])
    assert result.exit_code == 4
    assert "holds no succeeded run" in " ".join(result.output.split())
    result = runner.invoke(app, ["lift", "--book", str(measured.book), "--store", measured.store, "--until", "soon"])
    assert result.exit_code == 2
    assert "--until 'soon' is not an ISO 8601 time" in " ".join(result.output.split())
    result = runner.invoke(app, ["lift", "--book", str(measured.book), "--store", empty, "--out", "x.csv"])
    assert result.exit_code == 2


def test_cli_lift_measures_the_latest_run_of_its_own_book(measured: Measured, tmp_path: Path) -> None:
    """A store shared by several books: without --run, lift takes the latest run of the book it is given."""
    store = f"sqlite:///{(tmp_path / 'shared.db').as_posix()}"
    with open_store(measured.store) as old, open_store(store) as shared:
        run = old.get_run("lab-run")
        shared.save_run(run, old.recommendations("lab-run"))
        later = RunRecord(
            run_id="other-book-run",
            book_source=str(tmp_path / "another-book"),
            playbook_hash="h",
            status="succeeded",
            as_of=measured.decided_at,
            created_at=run.created_at + timedelta(hours=1),
        )
        shared.save_run(later, [])
    out = tmp_path / "lift.json"
    result = runner.invoke(app, ["lift", "--book", str(measured.book), "--store", store, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text(encoding="utf-8"))["run_id"] == "lab-run"
    chosen = runner.invoke(app, ["lift", "--book", str(measured.book), "--store", store, "--run", "other-book-run"])
    assert "run other-book-run has no recommendations to measure" in " ".join(chosen.output.split())
    elsewhere = runner.invoke(app, ["lift", "--book", str(tmp_path / "a-third-book"), "--store", store])
    assert elsewhere.exit_code != 0
    assert "no succeeded run of the book" in " ".join(elsewhere.output.split())


def test_cli_lift_knows_a_database_book_by_its_url_without_the_password() -> None:
    from nextmove.cli.lift import _book_shown, _same_book

    raw = "postgresql+psycopg://crm:s3cret@db.internal:5432/book"
    recorded = "postgresql+psycopg://crm:***@db.internal:5432/book"  # the run's book_source
    assert _same_book(recorded, raw)
    assert "s3cret" not in _book_shown(raw)
    assert not _same_book(recorded, raw.replace("/book", "/other"))
    # A password in the query string is hidden as the run records it (mask_url), and the run is found.
    query = "postgresql+psycopg://crm@db.internal:5432/book?password=s3cret&sslmode=require"
    from nextmove._urls import mask_url

    assert "s3cret" not in _book_shown(query)
    assert _same_book(mask_url(query), query)


def test_cli_lift_left_alone_says_it_counts_control_accounts_that_got_nothing() -> None:
    from rich.console import Console

    from nextmove.cli.lift import _actions_table
    from nextmove.measure.lift import ActionAccuracy

    row = ActionAccuracy(
        action_id="in_app_tour", objective="grow", outcome="expansion", unit="probability",
        treated_accounts=120, control_accounts=46, control_none_share=35 / 46, realised_effect=0.02,
        stderr=0.01, low=0.0, high=0.04, projected_effect=0.03, projected_accounts=166, error=-0.01,
        within_interval=True, realised_usd=10.0, projected_usd=15.0,
    )  # fmt: skip
    console = Console(record=True, width=400)
    console.print(_actions_table([row], {"in_app_tour": "grow"}))
    text = " ".join(console.export_text().split())  # the caption wraps at the table's width
    assert "76.1%" in text
    # The figure is the share of control that got nothing, whatever its default was.
    assert "left alone: share of control that got nothing" in text
    assert "whose default was to do nothing" not in text


def test_cli_lift_of_a_killed_run_says_it_will_never_finish(tmp_path: Path) -> None:
    """A run killed outright stays `running`: lift says its process has ended, as GET /v1/runs does."""
    store = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(store) as opened:
        killed = RunRecord(run_id="run-killed", book_source="b", playbook_hash="h", params={"process": ended_process()})
        opened.start_run(killed)
        opened.start_run(RunRecord(run_id="run-failed", book_source="b", playbook_hash="h"))
        opened.finish_run("run-failed", "failed", {"error": "ValueError: no history"})
    said = {}
    for run_id in ("run-killed", "run-failed"):
        result = runner.invoke(app, ["lift", "--book", str(tmp_path / "book"), "--store", store, "--run", run_id])
        assert result.exit_code == 2, result.output
        said[run_id] = " ".join(result.output.split())
        assert "only a succeeded run's decisions can be measured" in said[run_id]
    assert "is running" in said["run-killed"]
    assert "its process (pid" in said["run-killed"]
    assert "will never finish" in said["run-killed"]
    assert "It failed: ValueError: no history" in said["run-failed"]


def _shared_store(measured: Measured, tmp_path: Path, runs: list[tuple[str, str, int, str]]) -> str:
    """A store holding ``lab-run`` and ``runs`` (id, book, days after lab-run's decision, playbook hash), each
    with lab-run's recommendations, made in that order after it."""
    store = f"sqlite:///{(tmp_path / 'weekly.db').as_posix()}"
    with open_store(measured.store) as old, open_store(store) as shared:
        lab = old.get_run("lab-run")
        recs = old.recommendations("lab-run")
        shared.save_run(lab, recs)
        for i, (run_id, book, days, playbook_hash) in enumerate(runs):
            record = RunRecord(
                run_id=run_id,
                book_source=book,
                playbook_hash=playbook_hash,
                status="succeeded",
                as_of=measured.decided_at + timedelta(days=days),
                created_at=lab.created_at + timedelta(hours=i + 1),
            )
            shared.save_run(record, [replace(r, run_id=run_id) for r in recs])
    return store


def test_cli_and_api_lift_name_the_runs_whose_horizons_overlap_and_say_not_to_add_them(
    measured: Measured, tmp_path: Path
) -> None:
    """Weekly runs each measure nearly the same accounts, control and window: summing their lifts counts outcomes
    several times, and the lift says so."""
    from nextmove.api.measures import lift_report
    from nextmove.book.validate import load_book

    book = str(measured.book)
    playbook = parse_playbook((measured.book / "playbook.toml").read_text(encoding="utf-8"))
    same = playbook.content_hash()
    horizon = measured.horizon_days
    store = _shared_store(
        measured,
        tmp_path,
        [
            ("week-before", book, -7, same),
            ("refit", book, 0, same),
            # Next week's export in a sibling folder, under the built-in default playbook (the lab's): as
            # another book of the default playbook would be, it is not taken for this one.
            ("next-folder", str(measured.book.parent / "w02"), 7, same),
            ("after-the-horizon", book, horizon, same),
            ("another-book", str(tmp_path / "other"), 7, "another-playbook"),
        ],
    )
    out = tmp_path / "lift.json"
    result = runner.invoke(app, ["lift", "--book", book, "--store", store, "--run", "lab-run", "--out", str(out)])
    assert result.exit_code == 0, result.output
    day = measured.decided_at
    dates = f"{day - timedelta(days=7):%Y-%m-%d}, {day:%Y-%m-%d}"
    with open_store(store) as opened:
        accounts = opened.count_recommendations("lab-run")  # each run holds lab-run's accounts
    said = (
        f"2 other runs in the store were decided less than {horizon} days from this one ({dates}), with up to "
        f"{accounts:,} of its {accounts:,} accounts in common: their horizons overlap this run's, over the same "
        "accounts and control cohort, so their lifts count many of the same outcomes; compare them, never add them up"
    )
    assert f"note: {said}" in " ".join(result.output.split())
    assert said in json.loads(out.read_text(encoding="utf-8"))["notes"]
    with open_store(store) as opened:
        run = opened.get_run("lab-run")
        data = lift_report(opened, load_book(book, playbook=playbook), playbook, run, allow_partial=False)
    assert said in data["notes"]


def test_cli_lift_of_a_book_whose_latest_run_is_not_due_names_the_newest_that_is(
    measured: Measured, tmp_path: Path
) -> None:
    book = str(measured.book)
    same = parse_playbook((measured.book / "playbook.toml").read_text(encoding="utf-8")).content_hash()
    store = _shared_store(measured, tmp_path, [("backtest", book, -30, same), ("this-week", book, 14, same)])
    result = runner.invoke(app, ["lift", "--book", book, "--store", store])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "of run this-week (decided" in text
    assert "has not passed" in text
    assert (
        f"The newest run of this book whose horizon has passed is lab-run (decided {measured.decided_at:%Y-%m-%d}): "
        "measure it with --run lab-run." in text
    )
    early = (measured.decided_at + timedelta(days=5)).date().isoformat()
    none_due = runner.invoke(app, ["lift", "--book", book, "--store", store, "--until", early])
    assert none_due.exit_code == 2
    assert "No run of this book in the store has its horizon passed yet." in " ".join(none_due.output.split())


def _api_lift(store: str, book: Path, run_id: str) -> dict[str, Any]:
    """``GET /v1/lift?run_id=…`` of an in-process server over ``store`` and ``book`` (its own playbook)."""
    import asyncio

    import httpx
    from tests.api.conftest import make_keys

    from nextmove.api import ApiConfig, create_app
    from nextmove.book.validate import load_book

    playbook = parse_playbook((book / "playbook.toml").read_text(encoding="utf-8"))
    with open_store(store) as opened:
        keys = make_keys(opened)
    config = ApiConfig(playbook=playbook, book=load_book(str(book), playbook=playbook), store_url=store)
    api = create_app(config)

    async def ask() -> httpx.Response:
        transport = httpx.ASGITransport(app=api)
        headers = {"Authorization": f"Bearer {keys.admin}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://nextmove", headers=headers) as client:
            return await client.get("/v1/lift", params={"run_id": run_id})

    api.state.services.audit.start()  # as tests/api/test_runs.py does: requests wait for their audit entry
    try:
        answer = asyncio.run(ask())
    finally:
        api.state.services.close()
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def test_lift_of_a_run_made_under_another_playbook_says_so_in_its_notes(measured: Measured, tmp_path: Path) -> None:
    """The CLI's table, its JSON and GET /v1/lift all carry the note once (it was a CLI warning only)."""
    store = f"sqlite:///{(tmp_path / 'edited.db').as_posix()}"
    with open_store(measured.store) as old, open_store(store) as shared:
        run = replace(old.get_run("lab-run"), run_id="old-playbook-run", playbook_hash="0123456789abcdef")
        recs = [replace(r, run_id=run.run_id) for r in old.recommendations("lab-run")]
        first = next(i for i, r in enumerate(recs) if r.arm == "model")
        retired = {**recs[first].evidence, "model_action_id": "retired_call"}
        recs[first] = replace(recs[first], action_id="retired_call", evidence=retired)
        shared.save_run(run, recs)
    out = tmp_path / "lift.json"
    args = ["lift", "--book", str(measured.book), "--store", store, "--run", run.run_id, "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    current = parse_playbook((measured.book / "playbook.toml").read_text(encoding="utf-8")).content_hash()
    said = (
        f"run old-playbook-run was made with another playbook (0123456789abcdef); objectives, horizon and costs "
        f"are this one's ({current}); it recommended retired_call, which this playbook does not have: costed at $0"
    )
    text = " ".join(result.output.split())
    assert text.count("was made with another playbook") == 1, text
    assert f"note: {said}" in text
    assert json.loads(out.read_text(encoding="utf-8"))["notes"][0] == said
    assert _api_lift(store, measured.book, run.run_id)["notes"][0] == said
    same = runner.invoke(app, ["lift", "--book", str(measured.book), "--store", measured.store, "--run", "lab-run"])
    assert "another playbook" not in " ".join(same.output.split())


def _weekly_export(measured: Measured, tmp_path: Path, name: str = "Acme weekly playbook") -> tuple[Path, str]:
    """The measured book as this week's export, ``crm/final``, with a playbook of its own; and its hash."""
    final = tmp_path / "crm" / "final"
    final.mkdir(parents=True)
    for table in ("accounts", "signals", "touches", "outcomes"):
        (final / f"{table}.parquet").write_bytes((measured.book / f"{table}.parquet").read_bytes())
    text = (measured.book / "playbook.toml").read_text(encoding="utf-8")
    own = re.sub(r'(?m)^name = ".*"$', f'name = "{name}"', text, count=1)
    (final / "playbook.toml").write_text(own, encoding="utf-8")
    playbook_hash = parse_playbook(own).content_hash()
    assert playbook_hash != parse_playbook(text).content_hash()  # a playbook of its own, not the default
    return final, playbook_hash


def test_cli_lift_finds_the_run_of_a_weekly_export_and_warns_only_of_accounts_not_in_the_book(
    measured: Measured, tmp_path: Path
) -> None:
    """crm/w01 decided, crm/final measured (a new folder each week, one playbook of its own): lift without --run
    finds w01's run, as docs/measure.md says, and says nothing of another book while the accounts are the same."""
    final, playbook_hash = _weekly_export(measured, tmp_path)
    store = f"sqlite:///{(tmp_path / 'weekly.db').as_posix()}"
    with open_store(measured.store) as old, open_store(store) as shared:
        lab = old.get_run("lab-run")
        recs = old.recommendations("lab-run")
        w01 = replace(lab, run_id="w01-run", book_source=str(tmp_path / "crm" / "w01"), playbook_hash=playbook_hash)
        shared.save_run(w01, [replace(r, run_id="w01-run") for r in recs])
        ghosts = [replace(recs[0], run_id="w01-more", account_id=f"ghost-{k}") for k in range(3)]
        more = replace(w01, run_id="w01-more", created_at=lab.created_at - timedelta(hours=1))
        shared.save_run(more, [replace(r, run_id="w01-more") for r in recs] + ghosts)
        other = replace(lab, run_id="elsewhere", book_source=str(tmp_path / "other"), playbook_hash=playbook_hash)
        shared.save_run(replace(other, created_at=lab.created_at + timedelta(hours=1)), [])
    found = runner.invoke(app, ["lift", "--book", str(final), "--store", store])
    assert found.exit_code == 0, found.output
    said = " ".join(found.output.split())
    assert "Run w01-run decided" in said
    assert "was made on the book" not in said  # the same accounts: nothing to warn of
    ghost = runner.invoke(app, ["lift", "--book", str(final), "--store", store, "--run", "w01-more"])
    assert ghost.exit_code == 0, ghost.output
    warned = " ".join(ghost.output.split())
    assert "warning: run w01-more was made on the book" in warned
    assert f"3 of its {len(recs) + 3:,} accounts are not in this book; only the accounts of both are measured" in warned


def test_cli_and_api_lift_count_overlapping_runs_of_a_book_whose_playbook_was_edited(
    measured: Measured, tmp_path: Path
) -> None:
    """Weekly exports, the playbook edited between them: the runs' decisions share the accounts, so their lifts
    overlap whatever the playbook (only w03, under w02's playbook, was named); a run of the same folders that
    decided none of these accounts is not named."""
    from nextmove.api.measures import lift_report
    from nextmove.book.validate import load_book

    final, final_hash = _weekly_export(measured, tmp_path)
    store = f"sqlite:///{(tmp_path / 'weekly.db').as_posix()}"
    crm = tmp_path / "crm"
    with open_store(measured.store) as old, open_store(store) as shared:
        lab = old.get_run("lab-run")
        recs = old.recommendations("lab-run")
        weeks = [("w01", -7, "v1"), ("w02", 0, "v2"), ("w03", 6, "v2"), ("w04", 13, final_hash), ("w05", 19, "v5")]
        for i, (week, days, playbook_hash) in enumerate(weeks):
            record = replace(
                lab,
                run_id=f"{week}-run",
                book_source=str(crm / week),
                playbook_hash=playbook_hash,
                as_of=measured.decided_at + timedelta(days=days),
                created_at=lab.created_at + timedelta(hours=i),
            )
            shared.save_run(record, [replace(r, run_id=record.run_id) for r in recs])
        strangers = [replace(r, run_id="trial-run", account_id=f"trial-{k}") for k, r in enumerate(recs[:5])]
        trial = replace(lab, run_id="trial-run", book_source=str(crm / "trial"), playbook_hash="v2")
        shared.save_run(trial, strangers)
    out = tmp_path / "lift.json"
    args = ["lift", "--book", str(final), "--store", store, "--run", "w02-run", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    day = measured.decided_at
    dates = ", ".join(f"{day + timedelta(days=d):%Y-%m-%d}" for d in (-7, 6, 13, 19))
    said = (
        f"4 other runs in the store were decided less than {measured.horizon_days} days from this one ({dates}), "
        f"with up to {len(recs):,} of its {len(recs):,} accounts in common: their horizons overlap this run's"
    )
    assert said in " ".join(result.output.split())
    assert any(note.startswith(said) for note in json.loads(out.read_text(encoding="utf-8"))["notes"])
    playbook = parse_playbook((final / "playbook.toml").read_text(encoding="utf-8"))
    with open_store(store) as opened:
        run = opened.get_run("w02-run")
        data = lift_report(opened, load_book(str(final), playbook=playbook), playbook, run, allow_partial=False)
    assert any(note.startswith(said) for note in data["notes"])


def test_cli_lift_of_a_book_in_euros_writes_euros(measured: Measured, tmp_path: Path) -> None:
    # The playbook's currency names every amount of the tables: "€ / account", "+€12", never "$".
    book = tmp_path / "euro"
    book.mkdir()
    for table in ("accounts", "signals", "touches", "outcomes"):
        (book / f"{table}.parquet").write_bytes((measured.book / f"{table}.parquet").read_bytes())
    text = (measured.book / "playbook.toml").read_text(encoding="utf-8")
    (book / "playbook.toml").write_text('currency = "EUR"\n' + text, encoding="utf-8")
    result = runner.invoke(app, ["lift", "--book", str(book), "--store", measured.store, "--run", "lab-run"])
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    assert "$" not in shown
    assert "€ / account" in shown
    assert re.search(r"[+-]€[\d,.]+", shown)


def test_cli_lift_says_no_run_can_be_measured_yet_before_it_loads_the_book(
    measured: Measured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On 300,000 subscribers `nextmove lift` loaded the book for 49 s, then said no outcome could be measured yet:
    # the store's runs and the book's times alone say so.
    import nextmove.cli.lift as lift_cli

    book = str(measured.book)
    same = parse_playbook((measured.book / "playbook.toml").read_text(encoding="utf-8")).content_hash()
    store = _shared_store(measured, tmp_path, [("this-week", book, 14, same)])
    with monkeypatch.context() as patched:  # the book's reach from the loaded book
        patched.setattr(lift_cli, "book_times_reach", lambda _: None, raising=False)
        slow = runner.invoke(app, ["lift", "--book", book, "--store", store])
    assert slow.exit_code == 2

    def loaded(*_: object, **__: object) -> None:
        raise AssertionError("the book was loaded")

    monkeypatch.setattr(lift_cli, "load_inputs", loaded)
    quick = runner.invoke(app, ["lift", "--book", book, "--store", store])
    assert quick.exit_code == 2, quick.output
    # The same words (without the loading's notes): the newest run of the book that can be measured too.
    assert quick.output.startswith("error: ")
    assert slow.output.endswith(quick.output)
    assert "of run this-week (decided" in quick.output
    assert "measure it with --run lab-run." in " ".join(quick.output.split())
    early = (measured.decided_at + timedelta(days=5)).date().isoformat()
    none_due = runner.invoke(app, ["lift", "--book", book, "--store", store, "--until", early])
    assert none_due.exit_code == 2, none_due.output
    assert "No run of this book in the store has its horizon passed yet." in " ".join(none_due.output.split())
    # A run that can be measured still loads the book.
    due = runner.invoke(app, ["lift", "--book", book, "--store", store, "--run", "lab-run"])
    assert isinstance(due.exception, AssertionError)
    assert "the book was loaded" in str(due.exception)


def test_book_times_reach_is_the_loaded_book_s(tmp_path: Path) -> None:
    """From the times alone, as loading reads them: a table of dates reaches the midnight after its last date,
    a table of times its latest time, and rows after now are left out."""
    from nextmove.book import data_reach
    from nextmove.book.validate import load_book
    from nextmove.cli.lift import book_times_reach

    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id\na1\na2\n", encoding="utf-8")
    signals = "account_id, ts ,name,value\n" + "".join(f"a1,2026-03-{d:02d},logins,{d}\n" for d in range(1, 9))
    (folder / "signals.csv").write_text(signals, encoding="utf-8")
    touches = "touch_id,account_id,action_id,ts\nt1,a1,call,2026-03-04T17:45:00+02:00\nt2,a2,call,2026-03-09 08:00Z\n"
    (folder / "touches.csv").write_text(touches, encoding="utf-8")
    later = datetime.now() + timedelta(days=30)  # not happened yet: loading leaves it out
    outcomes = f"account_id,ts,kind\na1,2026-03-05,churn\na2,{later:%Y-%m-%d},churn\n"
    (folder / "outcomes.csv").write_text(outcomes, encoding="utf-8")
    loaded = data_reach(load_book(str(folder)))
    assert loaded is not None
    assert f"{loaded:%Y-%m-%d %H:%M}" == "2026-03-09 08:00"
    assert book_times_reach(str(folder)) == loaded
    (folder / "touches.csv").write_text("touch_id,account_id,action_id,ts\nt1,a1,call,2026-03-04\n", encoding="utf-8")
    assert (
        book_times_reach(str(folder))
        == data_reach(load_book(str(folder)))
        == datetime.fromisoformat("2026-03-09T00:00:00+00:00")
    )  # the signals' dates: 8 March is seen whole
    assert book_times_reach("sqlite:///book.db") is None  # a database is read once, by loading
