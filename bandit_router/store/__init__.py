"""Where decisions, their outcomes and the learned state shared by replicas are kept."""

from .base import Replica, StateStore
from .redis import RedisStateStore
from .sqlite import DecisionLog, SQLiteStateStore

__all__ = ["DecisionLog", "Replica", "RedisStateStore", "SQLiteStateStore", "StateStore"]
