"""The engine: jobs that run the domain end to end over a book and keep what they make in the store."""

from nextmove.engine.health import BandSummary, HealthResult, score_health
from nextmove.engine.model_store import (
    OUTCOME_MODEL_KIND,
    load_outcome_models,
    outcome_model_record,
    save_outcome_models,
)
from nextmove.engine.run import RUN_STAGES, RunOptions, RunResult, run

__all__ = [
    "OUTCOME_MODEL_KIND",
    "RUN_STAGES",
    "BandSummary",
    "HealthResult",
    "RunOptions",
    "RunResult",
    "load_outcome_models",
    "outcome_model_record",
    "run",
    "save_outcome_models",
    "score_health",
]
