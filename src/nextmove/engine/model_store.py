"""Saving outcome models to the store as versions, and loading them back with a compatibility check."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import polars as pl

from nextmove.errors import NotFoundError
from nextmove.models.outcome import IncompatibleModelError, OutcomeModels
from nextmove.playbook import Playbook
from nextmove.store import ModelVersionRecord, Store
from nextmove.store.records import utcnow

OUTCOME_MODEL_KIND = "outcome"
"""The ``kind`` of outcome-model versions in the store."""


def outcome_model_record(
    models: OutcomeModels,
    *,
    model_id: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    created_at: datetime | None = None,
) -> ModelVersionRecord:
    """A store record of fitted outcome models: the bytes, training window, features, metrics, playbook hash.

    ``metrics`` is merged over the models' own figures (per kind: rows, events, trees,
    calibration, validation AUC / Brier / log-loss).
    """
    info = models.info
    created = created_at or utcnow()
    return ModelVersionRecord(
        model_id=model_id or f"outcome-{created:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
        kind=OUTCOME_MODEL_KIND,
        playbook_hash=info.playbook_hash,
        blob=models.to_bytes(),
        created_at=created,
        trained_from=info.trained_from,
        trained_to=info.trained_to,
        features=list(info.features),
        metrics={**info.metrics(), **dict(metrics or {})},
    )


def save_outcome_models(
    store: Store,
    models: OutcomeModels,
    *,
    activate: bool = True,
    model_id: str | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> ModelVersionRecord:
    """Save ``models`` as a new version (kind ``outcome``) and, by default, make it the active one.

    Parameters
    ----------
    store
        Where to save.
    models
        Fitted outcome models.
    activate
        Make the new version the active ``outcome`` model.
    model_id
        Id of the version (default: ``outcome-<UTC time>-<random>``).
    metrics
        Extra JSON-ready figures, merged over the models' own.

    Returns
    -------
    ModelVersionRecord
        The record as saved (``active`` tells whether it was activated).
    """
    record = outcome_model_record(models, model_id=model_id, metrics=metrics)
    store.save_model(record)
    if activate:
        store.activate_model(record.model_id)
        return store.load_model(record.model_id)
    return record


def load_outcome_models(
    store: Store,
    playbook: Playbook,
    *,
    model_id: str | None = None,
    features: pl.DataFrame | None = None,
) -> OutcomeModels:
    """The outcome models of version ``model_id`` (default: the active one), checked against the playbook and features.

    Parameters
    ----------
    store
        Where the versions are.
    playbook
        The playbook to score under; the version must have been trained under it.
    model_id
        The version to load (default: the active ``outcome`` model).
    features
        A snapshot to score: must have every feature column the models read.

    Returns
    -------
    OutcomeModels
        The fitted models.

    Raises
    ------
    NotFoundError
        If there is no such version, or no active one.
    IncompatibleModelError
        If the version is not an outcome model, was trained under another playbook (the
        message names both hashes), or reads feature columns ``features`` lacks.
    """
    if model_id is None:
        record = store.active_model(OUTCOME_MODEL_KIND)
        if record is None:
            raise NotFoundError(
                f"the store at {store.url} has no active {OUTCOME_MODEL_KIND!r} model: train one first "
                "(nextmove health saves the models it trains)"
            )
    else:
        record = store.load_model(model_id)
    if record.kind != OUTCOME_MODEL_KIND:
        raise IncompatibleModelError(
            f"model {record.model_id!r} is a {record.kind!r} model, not an {OUTCOME_MODEL_KIND!r} model"
        )
    if record.playbook_hash != playbook.content_hash():
        raise IncompatibleModelError(
            f"model {record.model_id!r} was trained under playbook {record.playbook_hash}, and this playbook is "
            f"{playbook.content_hash()} (objectives, actions or settings changed): retrain it on this playbook"
        )
    models = OutcomeModels.from_bytes(record.blob, playbook)
    if features is not None:
        try:
            models.check_compatible(features=features)
        except IncompatibleModelError as exc:
            raise IncompatibleModelError(f"model {record.model_id!r}: {exc}") from None
    return models
