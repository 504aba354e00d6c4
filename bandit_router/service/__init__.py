"""bandit-router as a service: an OpenAI-compatible HTTP endpoint in front of one Router, which many replicas
can run sharing learned state and budget through Redis (`bandit-router serve --config FILE`; docs/SERVICE.md).

The core library never imports this package.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from .auth import hash_key
from .config import ServiceConfig, load_config, parse_config

if TYPE_CHECKING:
    from .app import Service

__all__ = ["Service", "ServiceConfig", "hash_key", "load_config", "parse_config", "serve"]


def __getattr__(name: str) -> Any:
    if name == "Service":  # imported on use: Starlette is needed only to serve (not for the config or the report)
        from .app import Service

        return Service
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def serve(config: ServiceConfig, host: str | None = None, port: int | None = None, access_log: bool = False,
          advertise_url: str | None = None) -> None:
    """Run the service on uvicorn until interrupted (host and port default to the config's server section); on
    SIGTERM or Ctrl-C it waits up to server.shutdown_timeout seconds for the requests in flight.

    With shared state (Redis, or SQLite on one machine), `advertise_url` (how the other replicas reach this one;
    default http://HOST:PORT unless HOST is a wildcard address) lets a rating sent to any replica be passed on to
    the one that served the answer.
    """
    import uvicorn

    from .app import Service

    host, port = host or config.host, config.port if port is None else port
    if advertise_url is None and host not in ("0.0.0.0", "::", ""):
        advertise_url = f"http://{host}:{port}"
    said = logging.StreamHandler(sys.stderr)  # what building the router says (the warm start's size, warnings)
    said.setFormatter(logging.Formatter("bandit-router serve: %(message)s"))
    logging.getLogger("bandit_router").addHandler(said)
    logging.getLogger("bandit_router").setLevel(logging.INFO)
    prior = f", warm-starting from the table {config.prior['table']!r}" if config.prior else ""
    print(f"bandit-router serve: building the router ({len(config.models)} models, encoder {config.encoder}"
          f"{prior}); loading the encoder can take a while", file=sys.stderr)
    service = Service(config, advertise_url=advertise_url)
    uvicorn.run(service.app, host=host, port=port,  # "info": uvicorn says where it listens once it does
                log_level="info", access_log=access_log, timeout_graceful_shutdown=config.shutdown_timeout)
