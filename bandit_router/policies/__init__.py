"""Routing policies, registered by name: linucb, thompson, epsilon-greedy, random, fixed, cheapest, barp, hierlin."""

from . import barp, baselines, epsilon_greedy, linucb, thompson  # noqa: F401  (registers the policies)
from . import hierlin  # noqa: F401
from . import shared  # noqa: F401  (shared-linucb)
from .base import POLICIES, Policy, PolicyConfig, make_policy, register

__all__ = ["POLICIES", "Policy", "PolicyConfig", "make_policy", "register"]
