"""Routing policies, registered by name: linucb, shrunk-linucb, thompson, epsilon-greedy, hierlin, shared-linucb,
barp (imported on first use), and the baselines random, fixed and cheapest."""

from . import baselines, epsilon_greedy, hierlin, linucb, shared, shrunk, thompson  # noqa: F401  (registers the policies)
from .base import POLICIES, Policy, PolicyConfig, make_policy, policy_class, policy_names, register

__all__ = ["POLICIES", "Policy", "PolicyConfig", "make_policy", "policy_class", "policy_names", "register"]
