"""Counters and histograms of one service process, written in Prometheus' text exposition format."""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from typing import Iterable, Mapping

__all__ = ["Metrics", "LATENCY_BUCKETS"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[tuple[str, str], ...]

# name -> (type, help)
_FAMILIES = {
    "bandit_router_requests_total": ("counter", "Chat completion requests answered, by HTTP status "
                                                    "(499: a stream its client closed)."),
    "bandit_router_decisions_total": ("counter", "Routing decisions served, by the model that answered."),
    "bandit_router_spend_usd_total": ("counter", "USD charged to the budget for calls, by model: a served answer's "
                                                 "cost, a stream cut part-way its worst case."),
    "bandit_router_feedback_received_total": ("counter", "Ratings received on /v1/feedback for this replica."),
    "bandit_router_feedback_forwarded_total": ("counter", "Ratings passed on to the replica that served the answer."),
    "bandit_router_feedback_applied_total": ("counter", "Ratings applied to the learned state (and persisted "
                                                        "to the shared store when there is one, or queued for "
                                                        "it when it did not answer)."),
    "bandit_router_feedback_rejected_total": ("counter", "Ratings refused, by reason."),
    "bandit_router_routing_seconds": ("histogram", "Time from request to routing decision (encode + policy)."),
    "bandit_router_upstream_seconds": ("histogram", "Time from routing decision to the upstream answer's end, "
                                                    "by model."),
    "bandit_router_request_seconds": ("histogram", "Whole chat completion request time."),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [*labels, *extra]
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}" if pairs else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metrics:
    """Thread-safe counters and fixed-bucket histograms; `render` adds series read at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._histograms: dict[str, dict[Labels, list[float]]] = defaultdict(dict)  # buckets..., sum, count

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0.0) + value

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            row = self._histograms[name].setdefault(key, [0.0] * (len(LATENCY_BUCKETS) + 2))
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    row[i] += 1
            row[-2] += seconds
            row[-1] += 1

    def value(self, name: str, **labels: str) -> float:
        """A counter's current value (0 if never incremented)."""
        with self._lock:
            return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self, read: Mapping[str, tuple[str, str, Mapping[Labels, float]]]) -> str:
        """The exposition text: every counter and histogram, then the series `read` at scrape time
        (name -> (type, help, {labels: value}))."""
        lines: list[str] = []
        with self._lock:
            for name, (kind, help_text) in _FAMILIES.items():
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
                if kind == "counter":
                    for labels, value in sorted(self._counters.get(name, {}).items()):
                        lines.append(f"{name}{_labels(labels)} {_number(value)}")
                    continue
                for labels, row in sorted(self._histograms.get(name, {}).items()):
                    for bound, count in zip((*LATENCY_BUCKETS, math.inf), (*row[:-2], row[-1])):
                        lines.append(f"{name}_bucket{_labels(labels, [('le', _number(bound))])} {_number(count)}")
                    lines.append(f"{name}_sum{_labels(labels)} {_number(row[-2])}")
                    lines.append(f"{name}_count{_labels(labels)} {_number(row[-1])}")
        for name, (kind, help_text, series) in read.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{_labels(labels)} {_number(value)}" for labels, value in sorted(series.items())]
        return "\n".join(lines) + "\n"
