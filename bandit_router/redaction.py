"""Keeps API keys, and prompt text the router was not asked to store, out of every log record.

LiteLLM and the HTTP clients under it log request bodies at DEBUG. While secrets are registered, a log
record factory installed once per process replaces each registered text, in the plain, repr- and
JSON-escaped forms those logs use, with "[REDACTED]" before any handler sees the record. `redact` masks both
kinds in an error message kept by the operator; `redact_keys` masks the keys only, for a message shown to a client
(masking the prompts of calls in flight would tell a client which lines other callers' prompts hold).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

__all__ = ["hidden", "hide", "redact", "redact_keys", "MIN_LENGTH"]

MIN_LENGTH = 4  # shorter texts are too common to redact without mangling every record
_keys: set[str] = set()  # hidden for the process's life
_in_flight: Counter[str] = Counter()  # hidden while their calls run
_key_texts: tuple[str, ...] = ()  # the keys, longest first (read without the lock)
_secrets: tuple[str, ...] = ()  # both, longest first (read without the lock by the record factory)
_lock = threading.Lock()
_installed = False


def _forms(text: str) -> set[str]:
    return {f for f in (text, repr(text)[1:-1], json.dumps(text)[1:-1]) if len(f) >= MIN_LENGTH}


def _longest_first(texts: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(texts, key=len, reverse=True))


def _refresh() -> None:
    global _key_texts, _secrets
    _key_texts = _longest_first(_keys)
    _secrets = _longest_first(_keys | set(_in_flight))


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    return text


def redact(text: str) -> str:
    """`text` with every registered secret, keys and the prompts of calls in flight, replaced by "[REDACTED]" (for
    error messages that go to logs)."""
    return _redact(text, _secrets)


def redact_keys(text: str) -> str:
    """`text` with the keys registered by `hide` replaced by "[REDACTED]", whatever calls are in flight (for error
    messages shown to a client)."""
    return _redact(text, _key_texts)


def _install() -> None:
    global _installed
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def redacting_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        secrets = _secrets
        if secrets:
            try:
                message = record.getMessage()
            except Exception:  # a malformed record: leave it to logging's own error handling
                return record
            redacted = _redact(message, secrets)
            if redacted != message:
                record.msg, record.args = redacted, None
            if record.exc_info and not record.exc_text:  # handlers reuse exc_text rather than format it again
                record.exc_text = _redact(logging.Formatter().formatException(record.exc_info), secrets)
            if record.stack_info:
                record.stack_info = _redact(record.stack_info, secrets)
        return record

    logging.setLogRecordFactory(redacting_record)
    _installed = True


def hide(texts: Iterable[str]) -> None:
    """Redact `texts` from log records for the rest of the process's life (API keys)."""
    with _lock:
        _install()
        _keys.update(form for text in texts for form in _forms(text))
        _refresh()


@contextmanager
def hidden(texts: Iterable[str]) -> Iterator[None]:
    """Redact `texts` from log records while the block runs (a prompt during its call)."""
    forms = [form for text in texts for form in _forms(text)]
    with _lock:
        _install()
        _in_flight.update(forms)
        _refresh()
    try:
        yield
    finally:
        with _lock:
            _in_flight.subtract(forms)
            for form in forms:
                if _in_flight[form] <= 0:
                    del _in_flight[form]
            _refresh()
