"""Where decisions and their outcomes are recorded."""

from .sqlite import DecisionLog

__all__ = ["DecisionLog"]
