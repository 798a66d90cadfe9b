"""Outcome models on real data: Hillstrom's visit and conversion, beside plain LightGBM and logistic regression.

The data README's fixed split: the test half is
``train_test_split(numpy.arange(64000), test_size=0.5, random_state=0)[1]`` (row positions in
file order), the train half the rest. Every model gets the same features (the customer columns
and the arm, ``segment``), is fitted on the train half and scored on the test half:

- ``nextmove OutcomeModel``: defaults (``n_jobs`` aside). Hillstrom has one decision date, so
  to keep the model's later-window validation unchanged the train half's rows get consecutive
  pseudo decision days in file order (20 days): its latest quarter is the validation window
  (early stopping, calibration choice), the rest trains the booster.
- ``plain LightGBM``: ``LGBMClassifier`` with its defaults (100 trees, no early stopping), on the
  whole train half, categoricals as LightGBM categories.
- ``logistic regression``: one-hot categoricals, standardised numbers, ``LogisticRegression``
  (L2, C = 1), on the whole train half.

    .venv/bin/python bench/hillstrom_outcomes.py [--data PATH]

The data path: ``--data``, else ``NEXTMOVE_HILLSTROM``, else ``../shared/data/hillstrom.csv``
relative to the repository. Without the file, the bench says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _util import machine, timed

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / ".." / "shared" / "data" / "hillstrom.csv"
OUTCOMES = ("visit", "conversion")
TEXT = ("history_segment", "zip_code", "channel", "segment")
NUMBERS = ("recency", "history", "mens", "womens", "newbie")


def run(path: Path, jobs: int) -> dict[str, object]:
    """Fit the three models per outcome on the train half and score them on the test half."""
    import lightgbm as lgb
    import numpy as np
    import polars as pl
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from nextmove.measure import evaluate_probabilities
    from nextmove.models.outcome import OutcomeModel

    data = pl.read_csv(path, schema_overrides={"spend": pl.Float64, "history": pl.Float64}).with_row_index("row")
    test_idx = np.sort(train_test_split(np.arange(data.height), test_size=0.5, random_state=0)[1])
    is_test = np.zeros(data.height, dtype=bool)
    is_test[test_idx] = True
    train = data.filter(pl.Series(~is_test))
    test = data.filter(pl.Series(is_test))
    features = [*NUMBERS, *TEXT]
    start = datetime(2008, 3, 1, tzinfo=UTC)
    days = 20
    pseudo_ts = [start + timedelta(days=int(i * days / train.height)) for i in range(train.height)]

    def frame(part: pl.DataFrame) -> pl.DataFrame:
        return part.select(pl.col("row").cast(pl.String).alias("account_id"), *features)

    # The same columns as plain arrays: text as integer codes learned on the train half (for
    # LightGBM's categorical splits), or as objects (for the one-hot encoder).
    categories = {c: sorted(train.get_column(c).unique().to_list()) for c in TEXT}
    number_idx = list(range(len(NUMBERS)))
    text_idx = list(range(len(NUMBERS), len(features)))

    def codes(part: pl.DataFrame) -> np.ndarray:
        return part.select(
            *[pl.col(c).cast(pl.Float64) for c in NUMBERS],
            *[pl.col(c).replace_strict(categories[c], list(range(len(categories[c]))), default=None) for c in TEXT],
        ).to_numpy()

    def raw(part: pl.DataFrame) -> np.ndarray:
        return np.asarray(part.select(features).rows(), dtype=object)

    results: dict[str, object] = {"train_rows": train.height, "test_rows": test.height}
    for outcome in OUTCOMES:
        y_train = train.get_column(outcome).to_numpy()
        y_test = test.get_column(outcome).to_numpy()
        scores: dict[str, dict[str, object]] = {}

        with timed() as t:
            model = OutcomeModel(outcome, n_jobs=jobs).fit(frame(train), y_train, pseudo_ts)
        p = model.predict_proba(frame(test))[:, 1]
        scores["nextmove OutcomeModel"] = _figures(evaluate_probabilities(y_test, p), t.seconds)
        scores["nextmove OutcomeModel"]["calibration"] = model.summary_.calibration
        scores["nextmove OutcomeModel"]["trees"] = model.summary_.trees

        with timed() as t:
            plain = lgb.LGBMClassifier(random_state=0, verbose=-1, n_jobs=jobs).fit(
                codes(train), y_train, categorical_feature=text_idx
            )
        p = plain.predict_proba(codes(test))[:, 1]
        scores["plain LightGBM"] = _figures(evaluate_probabilities(y_test, p), t.seconds)

        encode = ColumnTransformer(
            [
                ("text", OneHotEncoder(handle_unknown="ignore"), text_idx),
                ("numbers", StandardScaler(), number_idx),
            ]
        )
        with timed() as t:
            logistic = make_pipeline(encode, LogisticRegression(max_iter=2000)).fit(raw(train), y_train)
        p = logistic.predict_proba(raw(test))[:, 1]
        scores["logistic regression"] = _figures(evaluate_probabilities(y_test, p), t.seconds)
        results[outcome] = {"test_events": int(y_test.sum()), "models": scores}
    return results


def _figures(acc: object, seconds: float) -> dict[str, object]:
    from nextmove.measure import ProbabilityAccuracy

    assert isinstance(acc, ProbabilityAccuracy)
    return {
        "auc": round(acc.auc, 4) if acc.auc is not None else None,
        "average_precision": round(acc.average_precision, 4) if acc.average_precision is not None else None,
        "brier": round(acc.brier, 5),
        "ece": round(acc.ece, 4),
        "fit_seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="hillstrom.csv (default: see above)")
    parser.add_argument("--jobs", type=int, default=1, help="threads of the LightGBM models")
    args = parser.parse_args()
    path = args.data or Path(os.environ.get("NEXTMOVE_HILLSTROM", DEFAULT))
    if not path.is_file():
        print(f"Hillstrom data not found at {path}: skipped (pass --data or set NEXTMOVE_HILLSTROM).")
        return
    results = run(path.resolve(), args.jobs)
    print(json.dumps(results, indent=2))
    for outcome in OUTCOMES:
        block = results[outcome]
        assert isinstance(block, dict)
        print(f"{outcome} (test half, {block['test_events']:,} events):")
        for name, f in block["models"].items():
            print(f"  {name:<22} AUC {f['auc']}  Brier {f['brier']}  ECE {f['ece']}  ({f['fit_seconds']} s)")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
