"""The lab: synthetic books of business with ground truth, and a closed-loop environment."""

from nextmove.sim.config import DEFAULT_START, SimConfig
from nextmove.sim.env import LabEnvironment, StepResult
from nextmove.sim.frames import Truth, TruthSummary
from nextmove.sim.io import check_out_dir, write_book
from nextmove.sim.model import GROUPS, OUTCOME_KINDS, STATE_NAMES
from nextmove.sim.simulate import SimResult, simulate
from nextmove.sim.world import SIGNAL_NAMES, World

__all__ = [
    "DEFAULT_START",
    "GROUPS",
    "OUTCOME_KINDS",
    "SIGNAL_NAMES",
    "STATE_NAMES",
    "LabEnvironment",
    "SimConfig",
    "SimResult",
    "StepResult",
    "Truth",
    "TruthSummary",
    "World",
    "check_out_dir",
    "simulate",
    "write_book",
]
