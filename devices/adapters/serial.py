"""Serial adapter: frames from a SerialTransport through a Codec, one device per port."""

from __future__ import annotations

from devices._reading import Reading
from devices.adapters._base import (
    MAX_IN_FLIGHT,
    Adapter,
    Clock,
    DeadLetterSink,
    Sink,
    wall_clock_ms,
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
        clock: Clock = wall_clock_ms,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        super().__init__(device_id, transport, sink, dead_letters, clock=clock,
                         max_in_flight=max_in_flight)
        self.device_id = device_id
        self.codec = codec

    def _decode(self, item: bytes) -> list[Reading]:
        return self.codec.decode(item, self.device_id)

    def _raw(self, item: bytes) -> bytes:
        return item

    async def run(self) -> None:
        """Consume frames until the transport is closed, then flush a stateful codec.

        NMEA's assembler holds the epoch in progress until the next one starts;
        flushing hands that last fix on instead of losing it at shutdown.
        """
        await super().run()
        flush = getattr(self.codec, "flush", None)
        if flush is not None:
            for reading in flush():
                if reading.timestamp_ms is None:
                    reading = reading.with_timestamp(self.clock())
                await self.sink(reading)
                self.stats.readings += 1
