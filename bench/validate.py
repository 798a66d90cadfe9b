"""Benchmark of book validation: wall time and peak memory of ``validate_book`` on a large generated book.

Generates (seeded, with numpy and polars) a valid book of ``--accounts`` accounts, ``--signals``
signal rows and proportionate touches and outcomes as CSV or Parquet files (or tables of a
PostgreSQL schema, ``--format postgres``, at ``--pg-url``), then runs
``validate_book`` on it in a fresh child process, so that neither the generation's time nor its
memory is counted. Prints generation time, validation wall time, peak RSS of the validating
process and rows per second.

    .venv/bin/python bench/validate.py                      # 100k accounts, 20M signals, Parquet
    .venv/bin/python bench/validate.py --format csv
    .venv/bin/python bench/validate.py --accounts 1000 --signals 100000   # a quick run
    .venv/bin/python bench/validate.py --format postgres --accounts 3000 --signals 3000000

Target (docs/benchmarks.md): ≤ 60 s and ≤ 4 GB peak RSS on 2 cores at full size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from _util import cpu_seconds, current_rss_bytes, fmt_bytes, machine, peak_rss_bytes, run_child, timed

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
HISTORY_DAYS = 540
SIGNAL_NAMES = (
    "active_users",
    "logins",
    "feature_adoption",
    "api_calls",
    "storage_gb",
    "tickets_opened",
    "ticket_severity",
    "ticket_sentiment",
    "email_opens",
    "webinar_attended",
    "nps",
    "csat",
    "invoice_overdue_days",
    "seats_used",
)
OUTCOME_KINDS = ("churn", "renewal", "expansion", "contraction", "advocacy", "recovery")
TARGET_SECONDS = 60.0
TARGET_PEAK_BYTES = 4 * 1024**3
PG_SCHEMA = "nextmove_bench_validate"


def generate_book(
    out: Path,
    *,
    accounts: int,
    signals: int,
    touches: int,
    outcomes: int,
    file_format: str,
    seed: int,
) -> dict[str, int]:
    """Write a valid book (every row meets the contract) into ``out``; return the rows per table."""
    import numpy as np
    import polars as pl

    from nextmove.book.contract import ARMS, NO_ACTION
    from nextmove.playbook.loader import load_playbook

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    as_of_us = int(AS_OF.timestamp() * 1_000_000)
    history_us = HISTORY_DAYS * 86_400 * 1_000_000
    utc = pl.Datetime("us", "UTC")

    def ids(prefix: str, idx: np.ndarray) -> pl.Series:
        width = len(str(max(accounts, touches, outcomes, 1)))
        digits = pl.Series(idx, dtype=pl.Int64).cast(pl.String).str.zfill(width)
        return pl.select(pl.lit(prefix) + digits).to_series()

    def past_ts(n: int) -> pl.Series:
        # Whole seconds, as exported by most systems.
        offsets = rng.integers(1, history_us // 1_000_000, n, dtype=np.int64) * 1_000_000
        return pl.Series(as_of_us - offsets).cast(utc)

    def pick(values: tuple[str, ...] | list[str], n: int) -> pl.Series:
        return pl.Series(np.asarray(values, dtype=object)[rng.integers(0, len(values), n)], dtype=pl.String)

    start_us = as_of_us - history_us - rng.integers(0, 3 * 365 * 86_400, accounts, dtype=np.int64) * 1_000_000
    frames: dict[str, pl.DataFrame] = {
        "accounts": pl.DataFrame(
            {
                "account_id": ids("A", np.arange(accounts)),
                "name": ids("Customer ", np.arange(accounts)),
                "segment": pick(("SMB", "Mid-Market", "Enterprise"), accounts),
                "industry": pick(("software", "retail", "health", "finance", "education"), accounts),
                "lifecycle_stage": pick(("onboarding", "adoption", "expansion", "renewal"), accounts),
                "arr": np.round(rng.lognormal(10, 1.2, accounts), 2),
                "contract_start": pl.Series(start_us).cast(utc),
                "renewal_date": pl.Series(start_us + 365 * 86_400 * 1_000_000 * rng.integers(1, 4, accounts)).cast(utc),
                "owner": pick([f"csm{i:03d}" for i in range(max(accounts // 60, 1))], accounts),
                "region": pick(("NA", "EMEA", "APAC", "LATAM"), accounts),
                "seats": rng.integers(1, 500, accounts).astype(np.float64),
            }
        ),
        "signals": pl.DataFrame(
            {
                "account_id": ids("A", rng.integers(0, accounts, signals)),
                "ts": past_ts(signals),
                "name": pick(SIGNAL_NAMES, signals),
                "value": np.round(rng.gamma(2.0, 20.0, signals), 3),
                "source": pick(("product", "support", "marketing", "billing"), signals),
            }
        ),
    }
    actions = [*load_playbook().action_ids, NO_ACTION]
    frames["touches"] = pl.DataFrame(
        {
            "account_id": ids("A", rng.integers(0, accounts, touches)),
            "action_id": pick(actions, touches),
            "ts": past_ts(touches),
            "touch_id": ids("T", np.arange(touches)),
            "arm": pick(ARMS, touches),
            "propensity": np.round(rng.uniform(0.05, 1.0, touches), 4),
            "status": pick(("done", "dismissed", "pending"), touches),
        }
    )
    attributed = rng.random(outcomes) < 0.5
    touch_ref = ids("T", rng.integers(0, max(touches, 1), outcomes))
    frames["outcomes"] = pl.DataFrame(
        {
            "account_id": ids("A", rng.integers(0, accounts, outcomes)),
            "ts": past_ts(outcomes),
            "kind": pick(OUTCOME_KINDS, outcomes),
            "outcome_id": ids("O", np.arange(outcomes)),
            "value": np.round(rng.normal(0, 5000, outcomes), 2),
            "touch_id": touch_ref.zip_with(pl.Series(attributed), pl.Series([None] * outcomes, dtype=pl.String))
            if touches
            else pl.Series([None] * outcomes, dtype=pl.String),
        }
    )
    for name, frame in frames.items():
        if file_format == "csv":
            frame.write_csv(out / f"{name}.csv", datetime_format="%Y-%m-%dT%H:%M:%SZ")
        else:
            frame.write_parquet(out / f"{name}.parquet")
    return {name: frame.height for name, frame in frames.items()}


def load_postgres(folder: Path, url: str, schema: str) -> str:
    """Copy the Parquet book in ``folder`` into tables of a new PostgreSQL ``schema``; return the book's URL.

    Text columns are ``text``, numbers ``double precision``, times ``timestamptz``, as an export to a
    warehouse makes them.
    """
    import polars as pl
    import psycopg
    import sqlalchemy as sa

    types = {pl.String: "text", pl.Float64: "double precision", pl.Int64: "bigint"}
    parsed = sa.make_url(url)
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
        for path in sorted(folder.glob("*.parquet")):
            frame = pl.read_parquet(path)
            columns = ", ".join(
                f'"{n}" ' + ("timestamptz" if isinstance(d, pl.Datetime) else types[type(d)])
                for n, d in frame.schema.items()
            )
            conn.execute(f'CREATE TABLE "{schema}"."{path.stem}" ({columns})')
            text = frame.write_csv(datetime_format="%Y-%m-%dT%H:%M:%S%.fZ").encode()
            with conn.cursor().copy(f'COPY "{schema}"."{path.stem}" FROM STDIN (FORMAT csv, HEADER true)') as copy:
                copy.write(text)
    return parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def drop_postgres(url: str, schema: str) -> None:
    import psycopg
    import sqlalchemy as sa

    conninfo = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def validate_child(source: str, max_examples: int) -> dict[str, object]:
    """Validate ``source`` (a folder or a database URL) in this fresh process; return wall time and memory figures."""
    from nextmove.book.validate import validate_book
    from nextmove.playbook.loader import load_playbook

    playbook = load_playbook()
    baseline = current_rss_bytes()
    cpu_before = cpu_seconds()
    with timed() as t:
        report = validate_book(source, playbook=playbook, as_of=AS_OF, max_examples=max_examples)
    return {
        "seconds": t.seconds,
        "cpu_seconds": cpu_seconds() - cpu_before,
        "peak_rss": peak_rss_bytes(),
        "baseline_rss": baseline,
        "rows": {name: s.rows for name, s in report.tables.items()},
        "problems": report.total_problems,
        "examples": [p.message() for p in report.problems[:5]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--signals", type=int, default=20_000_000)
    parser.add_argument("--touches", type=int, default=None, help="default: signals / 20")
    parser.add_argument("--outcomes", type=int, default=None, help="default: signals / 100")
    parser.add_argument("--format", choices=("csv", "parquet", "postgres"), default="parquet", dest="file_format")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("NEXTMOVE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
        help="with --format postgres: the database the book's schema (nextmove_bench_validate) is made in",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the book here and keep it (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="validate the book already in --out, do not generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="validation runs (each in a fresh process)")
    parser.add_argument("--max-examples", type=int, default=1000)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        print(json.dumps(validate_child(args.child, args.max_examples)))
        return 0

    touches = args.signals // 20 if args.touches is None else args.touches
    outcomes = args.signals // 100 if args.outcomes is None else args.outcomes
    tmp = None
    if args.out is None:
        tmp = Path(tempfile.mkdtemp(prefix="nextmove-bench-validate-"))
        folder = tmp / "book"
    else:
        folder = args.out
    try:
        print(f"machine: {machine()}")
        if args.reuse:
            print(f"reusing the book in {folder}")
        else:
            if folder.exists():
                shutil.rmtree(folder)
            with timed() as gen:
                rows = generate_book(
                    folder,
                    accounts=args.accounts,
                    signals=args.signals,
                    touches=touches,
                    outcomes=outcomes,
                    file_format="parquet" if args.file_format == "postgres" else args.file_format,
                    seed=args.seed,
                )
            size = sum(p.stat().st_size for p in folder.iterdir())
            print(
                f"generated {args.file_format} book in {folder} ({fmt_bytes(size)}): "
                + ", ".join(f"{n} {k:,}" for n, k in rows.items())
                + f" in {gen.seconds:.1f} s (not counted)"
            )
        from nextmove._urls import mask_url

        source = str(folder)
        if args.file_format == "postgres":
            with timed() as copied:
                source = load_postgres(folder, args.pg_url, PG_SCHEMA)
            print(f"copied into schema {PG_SCHEMA} of {mask_url(args.pg_url)} in {copied.seconds:.1f} s (not counted)")
        runs = []
        for _ in range(args.repeat):
            load_before = os.getloadavg()[0]
            run = run_child(Path(__file__), ["--child", source, "--max-examples", str(args.max_examples)])
            # Other processes on a shared machine slow a run down: show how busy it was.
            run["load"] = (load_before, os.getloadavg()[0])
            runs.append(run)
        for i, run in enumerate(runs, start=1):
            seconds = float(run["seconds"])
            total = sum(run["rows"].values())
            peak = int(run["peak_rss"])
            print(
                f"run {i}: validate_book {seconds:.1f} s wall ({float(run['cpu_seconds']):.0f} s CPU),"
                f" peak RSS {fmt_bytes(peak)}"
                f" (after imports {fmt_bytes(int(run['baseline_rss']))}),"
                f" {total:,} rows, {total / seconds:,.0f} rows/s, {run['problems']} problem(s),"
                f" 1-min load average {run['load'][0]:.1f} before, {run['load'][1]:.1f} after"
            )
            for line in run["examples"]:
                print(f"    {line}")
        best = min(runs, key=lambda r: float(r["seconds"]))
        ok = float(best["seconds"]) <= TARGET_SECONDS and max(int(r["peak_rss"]) for r in runs) <= TARGET_PEAK_BYTES
        print(
            f"target ≤ {TARGET_SECONDS:.0f} s and ≤ {fmt_bytes(TARGET_PEAK_BYTES)}: {'met' if ok else 'MISSED'}",
        )
        return 0 if all(int(r["problems"]) == 0 for r in runs) else 1
    finally:
        if args.file_format == "postgres":
            drop_postgres(args.pg_url, PG_SCHEMA)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
