"""The playbook: objectives, the action catalog, rules and capacities, from ``playbook.toml``."""

from nextmove.playbook.schema import (
    Action,
    Capacity,
    ContactPolicy,
    Exploration,
    Objective,
    Playbook,
    SignalKinds,
    SignalRoles,
    Team,
)

__all__ = [
    "Action",
    "Capacity",
    "ContactPolicy",
    "Exploration",
    "Objective",
    "Playbook",
    "SignalKinds",
    "SignalRoles",
    "Team",
]
