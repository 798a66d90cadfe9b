"""The leak guard of every job that fits models: accounts columns that tell how an account ended are left out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nextmove.book import Book
from nextmove.features.leaks import LeakingColumn, leaking_columns, left_out_features
from nextmove.features.names import FeatureVocabulary
from nextmove.models.outcome import OutcomeModel
from nextmove.models.propensity import DEFAULT_EXCLUDE as EFFECT_EXCLUDE
from nextmove.playbook import Playbook


@dataclass(frozen=True)
class LeakGuard:
    """A book's leaking accounts columns (:func:`~nextmove.features.leaks.leaking_columns`) and what to leave out."""

    leaks: tuple[LeakingColumn, ...] = ()

    @property
    def left_out(self) -> tuple[str, ...]:
        """The feature columns every model leaves out for them."""
        return left_out_features(self.leaks)

    def notes(self) -> list[str]:
        """One note per leaking column."""
        return [leak.note() for leak in self.leaks]

    def exclude(self, exclude: Sequence[str]) -> tuple[str, ...]:
        """``exclude`` and the leaking features, each once."""
        return tuple(dict.fromkeys([*exclude, *self.left_out]))

    def effect_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """An effect model's settings with the leaking features added to its ``exclude`` (default: the model's)."""
        if not self.leaks:
            return dict(params)
        return {**params, "exclude": self.exclude(params.get("exclude", EFFECT_EXCLUDE))}

    def outcome_template(self, template: OutcomeModel | None) -> OutcomeModel | None:
        """The outcome models' settings with the leaking features added to their ``exclude``."""
        if not self.leaks:
            return template
        params = (template if template is not None else OutcomeModel()).get_params()
        return OutcomeModel(**{**params, "exclude": self.exclude(params["exclude"])})

    def reused_notes(self, read: Sequence[str]) -> list[str]:
        """Notes for models loaded from the store: those that read a leaking feature (``read``: their columns)."""
        columns = set(read)
        notes = []
        for leak in self.leaks:
            used = [f for f in leak.features if f in columns]
            if used:
                notes.append(
                    f"the reused models read {', '.join(used)}, which leaks how accounts ended (the accounts column "
                    f"{leak.column!r}, AUC {leak.auc:.2f} between the gone accounts and the others): fit them "
                    "again (without reusing them) to leave it out"
                )
        return notes


def guard_leaks(book: Book, playbook: Playbook, when: datetime, vocabulary: FeatureVocabulary | None) -> LeakGuard:
    """The leak guard of ``book`` at ``when``: the accounts columns whose values today tell the gone accounts apart."""
    leaks = leaking_columns(book.accounts, book.outcomes, playbook, when, vocabulary=vocabulary)
    return LeakGuard(tuple(leaks))
