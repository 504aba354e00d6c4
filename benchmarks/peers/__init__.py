"""Offline wrappers around third-party routers, used as peers in our benchmarks."""
