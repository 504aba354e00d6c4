"""Where decisions, their outcomes and the learned state shared by replicas are kept."""

from .base import Replica, StateStore
from .log import DecisionLog
from .redis import RedisStateStore
from .sqlite import SQLiteDecisionLog, SQLiteStateStore

__all__ = ["DecisionLog", "Replica", "RedisStateStore", "SQLiteDecisionLog", "SQLiteStateStore", "StateStore"]
