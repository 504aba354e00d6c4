"""Tenants and their API keys: keys are kept only as salted SHA-256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..errors import ConfigError

__all__ = ["Tenant", "KeyRing", "hash_key", "ANONYMOUS"]

ANONYMOUS = "default"  # the tenant of every request when the service is configured without tenants


def _digest(key: str, salt: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + key.encode()).hexdigest()


def hash_key(key: str, salt: str | None = None) -> dict[str, str]:
    """The config entry of an API key: {"salt": <16 random bytes, hex>, "key_sha256": sha256(salt + key)}."""
    if not isinstance(key, str) or len(key) < 16:
        raise ConfigError("an API key must be a string of at least 16 characters")
    salt = secrets.token_hex(16) if salt is None else salt
    return {"salt": salt, "key_sha256": _digest(key, salt)}


@dataclass(frozen=True)
class Tenant:
    """One caller of the service: its name, its key's salted digest and the budget key its spend is counted under."""

    name: str
    salt: str
    key_sha256: str
    budget_key: str

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], index: int) -> "Tenant":
        where = f"tenants[{index}]"
        unknown = set(entry) - {"name", "salt", "key_sha256", "budget_key"}
        if unknown:
            raise ConfigError(f"{where} has unknown fields {sorted(unknown)}; allowed: name, salt, key_sha256, "
                              "budget_key")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.name must be a non-empty string")
        salt, digest = entry.get("salt"), entry.get("key_sha256")
        try:
            ok = isinstance(salt, str) and len(bytes.fromhex(salt)) >= 8 and isinstance(digest, str) \
                and len(bytes.fromhex(digest)) == 32
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"{where} ({name!r}) needs salt (hex, >= 8 bytes) and key_sha256 (64 hex digits); "
                              "make them with `bandit-router serve --hash-key`")
        budget_key = entry.get("budget_key", name)
        if not isinstance(budget_key, str) or not budget_key:
            raise ConfigError(f"{where}.budget_key must be a non-empty string")
        return cls(name, salt, digest.lower(), budget_key)


class KeyRing:
    """Finds the tenant an API key belongs to; with no tenants every request is the anonymous tenant's."""

    def __init__(self, tenants: Sequence[Tenant]) -> None:
        names = [t.name for t in tenants]
        if len(set(names)) != len(names):
            raise ConfigError(f"tenant names must be distinct, got {names}")
        self.tenants = list(tenants)

    @property
    def open(self) -> bool:
        """Whether requests need no key (no tenants configured)."""
        return not self.tenants

    def tenant(self, key: str | None) -> Tenant | None:
        """The tenant whose key is `key`, or None. Every tenant's digest is compared (constant time each)."""
        if self.open:
            return Tenant(ANONYMOUS, "", "", ANONYMOUS)
        if not key:
            return None
        found = None
        for tenant in self.tenants:
            if hmac.compare_digest(_digest(key, tenant.salt), tenant.key_sha256):
                found = tenant
        return found
