"""Tests of EffectModel's R-loss correction of the effects (``rloss_effect``)."""

from __future__ import annotations

import polars as pl
import pytest
from tests.models.test_effect_groups import FAST, PLANTED, call_effects, grouped_book, playbook

from nextmove.errors import ConfigError
from nextmove.models.effect import EffectModel

# The history calls 90 % of the heavy users, for whom the call wins +20 points, and 5 % of the light ones.
TARGETED = ({"none": 0.08, "call": 0.9, "email": 0.02}, {"none": 0.9, "call": 0.05, "email": 0.05})


def test_rloss_correction_follows_the_history_s_targeting_where_one_shift_averages() -> None:
    training = grouped_book(win_by_group=PLANTED, arms_by_group=TARGETED, accounts=1500)
    settings = {**FAST, "n_groups": 0, "contrast_modifier": False}
    plain = call_effects(EffectModel(playbook(), **settings, rloss_effect=False).fit(training.drop("_group")), training)
    model = EffectModel(playbook(), **settings, rloss_effect=True).fit(training.drop("_group"))
    corrected = call_effects(model, training)
    assert not EffectModel(playbook()).rloss_effect  # off by default: measured, not adopted (docs/benchmarks.md)
    assert 1 in model.fits_[0].rloss_linear  # the call's correction (arm code 1)

    def by_group(effects: pl.DataFrame) -> tuple[float, float]:
        means = [effects.filter(pl.col("_group") == g).get_column("effect").mean() for g in (0, 1)]
        return float(means[0]), float(means[1])  # type: ignore[arg-type]

    heavy_plain, light_plain = by_group(plain)
    heavy, light = by_group(corrected)
    assert abs(heavy - 0.2) < abs(heavy_plain - 0.2)
    assert heavy - light > heavy_plain - light_plain


def test_rloss_settings_are_checked() -> None:
    training = grouped_book(win_by_group=PLANTED, accounts=60, periods=2)
    for key, value in (("rloss_shrink", -1.0), ("rloss_features", "trees"), ("rloss_effect", "yes")):
        with pytest.raises(ConfigError, match=key):
            EffectModel(playbook(), **FAST, **{key: value}).fit(training.drop("_group"))
