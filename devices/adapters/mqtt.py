"""MQTT adapter: messages through a payload Convention; acked only after the sinks accept.

The order per message is: decode, await the sink for every reading (or the
dead-letter sink), then ``await message.ack()``. If a sink raises, run()
raises and the message stays unacknowledged at the broker, which redelivers
it to the persistent session: at-least-once. So that downstream can turn that
into exactly-once, every reading of a QoS 1 message carries a ``Delivery`` (the
session's client id and epoch, the packet id, its place in the message and a
digest of topic and payload) and whether the broker flagged the message DUP: the service keeps
the identity with the event and acknowledges a DUP copy it already holds
without writing it again (edge/_dedupe.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from paho.mqtt.client import topic_matches_sub

from devices._errors import DecodeError
from devices._reading import Arrival, Delivery, Reading
from devices.adapters._base import (
    MAX_IN_FLIGHT,
    Adapter,
    Clock,
    DeadLetterSink,
    Sink,
    refused_by_default,
    system_arrival,
)
from devices.codecs._base import Convention
from devices.transports.mqtt import MqttMessage, MqttTransport


class MqttAdapter(Adapter[MqttMessage]):
    """Messages of one subscription; the device id comes from topic or payload.

    `convention` is one Convention for every topic, or a mapping of topic
    filter -> Convention (first match wins) when one broker carries several.
    """

    kind = "mqtt"

    def __init__(
        self,
        adapter_id: str,
        transport: MqttTransport,
        convention: Convention | Mapping[str, Convention],
        sink: Sink,
        dead_letters: DeadLetterSink | None = None,
        *,
        clock: Clock = system_arrival,
        max_in_flight: int = MAX_IN_FLIGHT,
        refused: Callable[[BaseException], bool] = refused_by_default,
    ) -> None:
        super().__init__(adapter_id, transport, sink, dead_letters, clock=clock,
                         max_in_flight=max_in_flight, refused=refused)
        self.convention = convention
        self._client_id: str = getattr(getattr(transport, "config", None), "client_id", "") or ""

    def _decode(self, item: MqttMessage, arrival: Arrival) -> list[Reading]:
        if item.oversize:
            # Refused by the transport as it arrived; only its head is here. Dead-lettered
            # (and so acknowledged: a redelivery would be refused the same way).
            limit = getattr(getattr(self.transport, "config", None), "max_payload", None)
            raise DecodeError(item.payload, f"payload of {item.oversize} bytes is over max_payload "
                              f"({limit} bytes); only its first {len(item.payload)} bytes are kept",
                              "mqtt")
        readings = self._convention_decode(item)
        if item.qos == 0 or not readings:
            return readings  # QoS 0 is never redelivered
        client_id = self._client_id
        # One copy per reading for its arrival and its delivery both.
        return [r.arrived(arrival, Delivery.mqtt(client_id, item.mid, item.payload, i,
                                                 item.duplicate, session=item.session,
                                                 topic=item.topic))
                for i, r in enumerate(readings)]

    def _convention_decode(self, item: MqttMessage) -> list[Reading]:
        if not isinstance(self.convention, Mapping):
            return self.convention.decode(item.topic, item.payload)
        for topic_filter, convention in self.convention.items():
            if topic_matches_sub(topic_filter, item.topic):
                return convention.decode(item.topic, item.payload)
        raise DecodeError(item.payload, f"no convention configured for topic {item.topic!r}", "mqtt")

    def _raw(self, item: MqttMessage) -> bytes:
        return item.payload

    def _source(self, item: MqttMessage) -> str:
        return f"{self.transport.id}#{item.topic}"

    async def _done(self, item: MqttMessage) -> None:
        await item.ack()

    def _done_now(self, item: MqttMessage) -> bool:
        item.ack_nowait()  # what ack() does: it never waits
        return True
