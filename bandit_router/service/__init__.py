"""bandit-router as a service: an OpenAI-compatible HTTP endpoint in front of one Router, which many replicas
can run sharing learned state and budget through Redis (`bandit-router serve --config FILE`; docs/SERVICE.md).

The core library never imports this package.
"""

from __future__ import annotations

from .app import Service
from .auth import hash_key
from .config import ServiceConfig, hashing_encoder, load_config, parse_config

__all__ = ["Service", "ServiceConfig", "hash_key", "hashing_encoder", "load_config", "parse_config", "serve"]


def serve(config: ServiceConfig, host: str | None = None, port: int | None = None, access_log: bool = False) -> None:
    """Run the service on uvicorn until interrupted (host and port default to the config's server section)."""
    import uvicorn

    service = Service(config)
    uvicorn.run(service.app, host=host or config.host, port=config.port if port is None else port,
                log_level="warning", access_log=access_log, timeout_graceful_shutdown=5)
