"""Routing policies, registered by name: linucb, thompson, epsilon-greedy, random, fixed, cheapest."""

from . import baselines, epsilon_greedy, linucb, thompson  # noqa: F401  (registers the policies)
from .base import POLICIES, Policy, PolicyConfig, make_policy, register

__all__ = ["POLICIES", "Policy", "PolicyConfig", "make_policy", "register"]
