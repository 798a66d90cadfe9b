"""The report of a real run (a small lab book): built from the run, and from the store, and opened in Chromium."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from tests.report.test_report_browser import open_report

from nextmove.engine.run import RunResult, run
from nextmove.report import build_report_data, render_report, write_report
from nextmove.report.render import code_spans
from nextmove.report.stored import report_data_from_store
from nextmove.sim import SimConfig, simulate
from nextmove.store import open_store

FAST = {"n_folds": 2, "n_estimators": 25, "n_draws": 60}


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, str]:
    lab = simulate(SimConfig(accounts=240, months=10, seed=11))
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'nextmove.db'}"
    with open_store(url) as store:
        result = run(
            lab.book,
            lab.config.resolved_playbook(),
            as_of=lab.as_of,
            store=store,
            effect_params=FAST,
            truth=lab.truth.values,
            run_id="report-run",
        )
    return result, url


def test_run_report_matches_the_run_and_its_stored_copy(lab_run: tuple[RunResult, str]) -> None:
    result, url = lab_run
    data = build_report_data(result.summary, result.recommendations)
    recs = result.recommendations
    assert sum(c.count for c in data.actions) == recs.height
    assert sum(b.accounts for b in data.bands) == recs.height
    acting = recs.filter(recs["action_id"] != "none").height
    assert sum(c.count for c in data.families) == acting
    impact = {i.label: i for i in data.impact}
    total = result.summary["projected_impact_usd"]["value"]
    assert impact["All objectives"].value_usd == pytest.approx(total)
    # Objectives' dollars add up to the total value before the actions' costs.
    by_objective = sum(i.value_usd for i in data.impact if i.label != "All objectives")
    assert by_objective >= total - 1e-6
    assert any(m.metric.startswith("Regret") for m in data.metrics)
    with open_store(url) as store:
        stored = report_data_from_store(store)
    assert stored.run_id == "report-run"
    assert stored.bands == data.bands
    assert stored.stages == data.stages
    assert stored.actions == data.actions
    assert [r["account_id"] for r in stored.top_at_risk] == [r["account_id"] for r in data.top_at_risk]


def test_run_report_opens_without_errors(
    lab_run: tuple[RunResult, str], browser: Any, tmp_path: Path, artifacts: Path
) -> None:
    result, _ = lab_run
    path = write_report(build_report_data(result.summary, result.recommendations), tmp_path / "report.html")
    started = time.perf_counter()
    page, errors, _ = open_report(browser, path)
    assert page.locator("svg.chart").count() >= 5
    assert page.locator("#accounts tbody tr").count() == min(100, result.recommendations.height)
    # The lab's accounts have ARR and owners: the at-risk section, the ARR chart and the Owner column are there.
    assert page.locator("#risk tbody tr").count() > 0
    assert page.locator("svg.chart.wide[aria-label^='ARR by health band:']").count() == 1
    assert "Owner" in page.locator("#accounts thead th").all_inner_texts()
    first = result.recommendations.get_column("account_id")[0]
    page.fill("#search", first)
    assert page.locator("#accounts tbody tr").count() >= 1
    seconds = time.perf_counter() - started
    print(f"report of {result.recommendations.height} accounts opened and searched in {seconds:.1f} s")
    page.screenshot(path=str(artifacts / "report-lab-run.png"), full_page=True)
    assert errors == []
    page.close()


def test_run_report_names_each_account_from_the_book_and_keeps_the_name_in_the_store(
    lab_run: tuple[RunResult, str], browser: Any, tmp_path: Path
) -> None:
    # The book's accounts.csv has names; the run dropped them, and every report showed ids only.
    result, url = lab_run
    recs = result.recommendations
    assert "name" in recs.columns
    first = recs.row(0, named=True)
    assert first["name"]
    assert first["name"] != first["account_id"]
    with open_store(url) as store:
        stored = report_data_from_store(store)
    for data in (build_report_data(result.summary, recs), stored):
        row = next(r for r in data.table if r["id"] == first["account_id"])
        assert row["account"] == first["name"]
    path = write_report(stored, tmp_path / "report.html")
    page, errors, _ = open_report(browser, path)
    page.fill("#search", first["name"])
    rows = page.locator("#accounts tbody tr")
    assert rows.count() >= 1
    texts = [rows.nth(i).locator("td").first.inner_text().split("\n") for i in range(rows.count())]
    assert [first["name"], first["account_id"]] in texts
    assert errors == []
    page.close()


def test_report_of_a_run_where_no_action_is_eligible_says_why_and_shows_the_runs_notes() -> None:
    # Every action blocked by its eligibility: the page said "no action is worth more than it costs, or
    # none fits the capacities" and "The playbook groups no actions by focus", and showed no note.
    from tests.engine.test_run import shop_book

    book, playbook = shop_book(n=120, weeks=24)
    blocked = playbook.model_copy(
        update={"actions": [a.model_copy(update={"eligibility": "arr > 1000000000"}) for a in playbook.actions]}
    )
    result = run(book, blocked, effect_params=FAST, evaluate=False, segments=False)
    [never] = [n for n in result.summary["notes"] if n.startswith("eligible for none of the")]
    data = build_report_data(result.summary, result.recommendations)
    alone = next(s for s in data.sentences if "left alone" in s)
    assert "the best action is not eligible for them (see the notes below)" in alone
    assert "none fits the capacities" not in alone
    html = render_report(data)
    assert "No account was given an action." in html
    assert "groups no actions by focus" not in html
    assert str(code_spans(never)) in html.split('<section id="summary"')[1].split("</section>")[0]
