"""The REST API: real-time decisions, accounts, recommendations, feedback and runs (FastAPI)."""

from nextmove.api.app import create_app
from nextmove.api.service import ApiConfig

__all__ = ["ApiConfig", "create_app"]
