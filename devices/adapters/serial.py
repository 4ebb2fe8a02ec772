"""Serial adapter: frames from a SerialTransport through a Codec, one device per port."""

from __future__ import annotations

from collections.abc import Callable

from devices._errors import DecodeError
from devices._reading import Arrival, Reading
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
from devices.transports.serial import SerialTransport


class SerialAdapter(Adapter[bytes]):
    """One serial port carrying one device's frames (NMEA, GATT hex lines, text)."""

    kind = "serial"

    def __init__(
        self,
        device_id: str,
        transport: SerialTransport,
        codec: Codec,
        sink: Sink,
        dead_letters: DeadLetterSink | None = None,
        *,
        clock: Clock = system_arrival,
        max_in_flight: int = MAX_IN_FLIGHT,
        refused: Callable[[BaseException], bool] = refused_by_default,
    ) -> None:
        super().__init__(device_id, transport, sink, dead_letters, clock=clock,
                         max_in_flight=max_in_flight, refused=refused)
        self.device_id = device_id
        self.codec = codec

    def _decode(self, item: bytes, arrival: Arrival) -> list[Reading]:
        return self.codec.decode(item, self.device_id, arrival)

    def _raw(self, item: bytes) -> bytes:
        return item

    async def run(self) -> None:
        """Consume frames until the transport is closed, then flush a stateful codec.

        NMEA's assembler holds the epoch in progress until the next one starts;
        flushing hands that last fix on instead of losing it at shutdown.
        """
        await super().run()
        flush = getattr(self.codec, "flush", None)
        if flush is None:
            return
        arrival = self.clock()
        try:
            readings = flush()
        except DecodeError as exc:  # the held epoch cannot become a fix: a dead letter, no crash
            await self._dead_letter(b"", exc, arrival)[0]
            return
        for reading in readings:
            reading = reading.arrived(arrival)
            try:
                written = self.sink(reading)
            except DecodeError as exc:  # refused for its data, as in run()
                await self._dead_letter(b"", exc, arrival)[0]
                continue
            await written
            self.stats.readings += 1
