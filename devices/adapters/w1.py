"""1-wire adapter: DS18B20 sysfs samples through a codec; the sensor id is the device id."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from devices._reading import Arrival, Reading, TimeSource
from devices.adapters._base import (
    MAX_IN_FLIGHT,
    Adapter,
    Clock,
    DeadLetterSink,
    Sink,
    refused_by_default,
    system_arrival,
)
from devices.codecs._base import Codec
from devices.transports.w1 import W1Sample, W1Transport


class W1Adapter(Adapter[W1Sample]):
    """Every sensor on the bus; `names` maps sensor ids (``28-...``) to device ids."""

    kind = "w1"

    def __init__(
        self,
        adapter_id: str,
        transport: W1Transport,
        codec: Codec,
        sink: Sink,
        dead_letters: DeadLetterSink | None = None,
        *,
        names: Mapping[str, str] | None = None,
        clock: Clock = system_arrival,
        max_in_flight: int = MAX_IN_FLIGHT,
        refused: Callable[[BaseException], bool] = refused_by_default,
    ) -> None:
        super().__init__(adapter_id, transport, sink, dead_letters, clock=clock,
                         max_in_flight=max_in_flight, refused=refused)
        self.codec = codec
        self.names = dict(names or {})

    def _decode(self, item: W1Sample, arrival: Arrival) -> list[Reading]:
        device_id = self.names.get(item.sensor_id, item.sensor_id)
        readings = self.codec.decode(item.raw, device_id, arrival)
        # sysfs has no device clock; the poll time is closer than the arrival in the loop.
        return [r if r.timestamp_ms is not None
                else r.with_timestamp(item.read_at_ms, TimeSource.POLL).arrived(arrival)
                for r in readings]

    def _raw(self, item: W1Sample) -> bytes:
        return item.raw

    def _source(self, item: W1Sample) -> str:
        return f"{self.transport.id}/{item.sensor_id}"
