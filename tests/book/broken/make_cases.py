"""Write the binary files of the broken-book corpus (Parquet, zip, random bytes, Latin-1, UTF-16).

The text cases are hand-written and committed as they are; this script made the few files that
cannot be typed, and is kept so they can be remade (deterministically) or reviewed:

    .venv/bin/python tests/book/broken/make_cases.py
"""

from __future__ import annotations

import io
import random
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

HERE = Path(__file__).resolve().parent


def _parquet(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    # No statistics and one small row group keep the committed files tiny and stable.
    frame.write_parquet(buf, compression="uncompressed", statistics=False)
    return buf.getvalue()


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("xl/workbook.xml", date_time=(2025, 1, 1, 0, 0, 0))
        zf.writestr(info, "<workbook/>")
    return buf.getvalue()


def make(root: Path = HERE) -> list[Path]:
    """(Re)write every generated file of the corpus under ``root``; return the files written."""
    written: list[Path] = []

    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)

    garbage = bytes(random.Random(20261122).randrange(256) for _ in range(96))
    _write(root / "24_binary_garbage" / "accounts.csv", b"\x00\x01" + garbage)
    _write(root / "25_spreadsheet_named_csv" / "signals.csv", _zip())
    _write(root / "26_parquet_named_csv" / "accounts.csv", _parquet(pl.DataFrame({"account_id": ["a1", "a2"]})))
    _write(root / "30_latin1_encoding" / "accounts.csv", "account_id,name\na1,Café Noir\n".encode("latin-1"))
    _write(
        root / "31_utf16_encoding" / "outcomes.csv",
        "account_id,ts,kind\na1,2025-01-01,renewal\n".encode("utf-16"),
    )

    both = root / "37_both_csv_and_parquet"
    _write(both / "accounts.parquet", _parquet(pl.DataFrame({"account_id": ["a1"]})))

    _write(
        root / "38_parquet_arr_as_text" / "accounts.parquet",
        _parquet(
            pl.DataFrame(
                {
                    "account_id": pl.Series([1, 2, 3, 4], dtype=pl.Int64),
                    "arr": pl.Series(["1200.5", "abc", None, "-3"], dtype=pl.String),
                }
            )
        ),
    )

    ts_int = root / "39_parquet_ts_as_integer"
    _write(
        ts_int / "signals.parquet",
        _parquet(
            pl.DataFrame(
                {
                    "account_id": ["a1", "a1"],
                    "ts": pl.Series([1735689600, 1735776000], dtype=pl.Int64),
                    "name": ["logins", "logins"],
                    "value": [1.0, 2.0],
                }
            )
        ),
    )

    native = root / "40_parquet_contract_breaches"
    _write(
        native / "accounts.parquet",
        _parquet(
            pl.DataFrame(
                {
                    "account_id": ["a1", "a2", "a2", None],
                    "arr": [100.0, -1.0, float("nan"), float("inf")],
                    "contract_start": pl.Series([date(2024, 1, 1)] * 4, dtype=pl.Date),
                    "renewal_date": pl.Series(
                        [datetime(2025, 1, 1), datetime(2023, 6, 1), None, datetime(2025, 1, 1)],
                        dtype=pl.Datetime("ms"),
                    ),
                }
            )
        ),
    )
    paris = ZoneInfo("Europe/Paris")
    _write(
        native / "signals.parquet",
        _parquet(
            pl.DataFrame(
                {
                    "account_id": ["a1", "zz", "a1"],
                    # 00:30 in Paris on Jan 1 is 23:30 UTC on Dec 31 (before the as-of time); 02:00 is after.
                    # The as-of time lies in the future, so `nextmove validate --as-of` reports it as an error too.
                    "ts": pl.Series(
                        [
                            datetime(2100, 1, 1, 0, 30, tzinfo=paris),
                            datetime(2025, 6, 1, tzinfo=paris),
                            datetime(2100, 1, 1, 2, 0, tzinfo=paris),
                        ],
                        dtype=pl.Datetime("ns", "Europe/Paris"),
                    ),
                    "name": ["logins", "logins", "logins"],
                    "value": [1.0, None, 3.0],
                }
            )
        ),
    )
    _write(
        native / "touches.parquet",
        _parquet(
            pl.DataFrame(
                {
                    "account_id": ["a1", "a1", "a2"],
                    "action_id": ["nurture_email", "bogus", "none"],
                    "ts": pl.Series([date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)], dtype=pl.Date),
                    "touch_id": pl.Series([1, 1, 2], dtype=pl.Int32),
                    "arm": pl.Series(["model", "treatment", "control"], dtype=pl.Categorical),
                    "propensity": ["0.5", "high", "1.5"],
                }
            )
        ),
    )
    _write(
        native / "outcomes.parquet",
        _parquet(
            pl.DataFrame(
                {
                    "account_id": ["a1", "a2"],
                    "ts": pl.Series([datetime(2025, 4, 1, tzinfo=UTC)] * 2, dtype=pl.Datetime("us", "UTC")),
                    "kind": [None, "renewal"],
                    "touch_id": pl.Series([2, 7], dtype=pl.Int64),
                }
            )
        ),
    )
    # A NaN propensity reaches validation from a native float column (as CSV text, NaN is missing).
    _write(
        root / "44_propensity_nan_reported_once" / "touches.parquet",
        _parquet(
            pl.DataFrame(
                {
                    "account_id": ["a1", "a1"],
                    "action_id": ["none", "none"],
                    "ts": pl.Series([date(2025, 1, 1), date(2025, 1, 2)], dtype=pl.Date),
                    "propensity": [float("nan"), 0.5],
                }
            )
        ),
    )
    return written


if __name__ == "__main__":
    make()
