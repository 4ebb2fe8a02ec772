"""Keeping the upstream credentials out of every log line and error message.

aiokafka logs each request at DEBUG, and a SASL PLAIN authenticate request carries the
password in clear (``auth_bytes=b'\\x00user\\x00password'``). The uplink registers its
secrets here, and one filter on aiokafka's loggers masks them (and every SASL payload)
before any handler sees the record, whatever level the operator turned on.
"""

from __future__ import annotations

import logging
import re
import threading

__all__ = ["mask", "register_secrets"]

_MASK = "***"
_AUTH_BYTES = re.compile(r"auth_bytes=b(['\"]).*?(?<!\\)\1")
_lock = threading.Lock()
_secrets: set[str] = set()
_filtered: set[str] = set()


def mask(text: str) -> str:
    """``text`` with every registered secret, and any SASL payload, replaced by ``***``."""
    text = _AUTH_BYTES.sub(f"auth_bytes={_MASK}", text)
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, _MASK)
        escaped = repr(secret.encode())[2:-1]   # how it looks inside a logged bytes repr
        if escaped != secret and escaped in text:
            text = text.replace(escaped, _MASK)
    return text


class _MaskSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_FILTER = _MaskSecrets()


def register_secrets(*secrets: str | None) -> None:
    """Mask these strings from now on, in aiokafka's logs and in ``mask()``.

    Also (re)attaches the filter to every ``aiokafka`` logger that exists: filters on a
    logger do not apply to its children, so each one needs it.
    """
    with _lock:
        _secrets.update(s for s in secrets if s)
        names = ["aiokafka"] + [n for n in logging.root.manager.loggerDict
                                if n.startswith("aiokafka.")]
        for name in names:
            if name not in _filtered:
                logging.getLogger(name).addFilter(_FILTER)
                _filtered.add(name)
