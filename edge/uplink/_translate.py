"""aiokafka's and the socket layer's errors, as the uplink's own (the one place that does it)."""

from __future__ import annotations

from aiokafka.errors import (
    InvalidProducerEpoch,
    ProducerFenced,
)

from ._errors import FencedError, UplinkError, UpstreamError

_FENCED = (ProducerFenced, InvalidProducerEpoch)


class _Isolating(UpstreamError):
    """The cluster refused a record batch for good: start again from the checkpoint, with
    the batch's records sent alone or the refused one dead-lettered (``RecordRefusals``)."""



def _translate(exc: BaseException, what: str) -> UplinkError:
    """aiokafka's and the socket layer's errors, as ours (the one place that does it)."""
    if isinstance(exc, UplinkError):
        return exc
    if isinstance(exc, _FENCED):
        return FencedError(f"{what}: fenced by a newer uplink with the same edge id ({exc!r})")
    return UpstreamError(f"{what}: {type(exc).__name__}: {exc}")
