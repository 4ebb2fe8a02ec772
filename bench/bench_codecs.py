"""Decode throughput per codec, in frames per second.

    .venv/bin/python bench/bench_codecs.py [--seconds 1.0]

Each codec decodes the same small set of frames in a loop for about
``--seconds`` (default 1 s each, so the whole run stays well under 30 s on
a 2-core box). NMEA is measured twice over the same sentences: pynmeagps
parsing alone (the library floor) and our fix assembler (checks, epochs,
dates) on top, with the ratio between them.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from pynmeagps import VALCKSUM, NMEAReader

from devices import (
    NmeaFixAssembler,
    Reading,
    TextTemperatureCodec,
    decode_blood_pressure,
    decode_temperature_measurement,
    decode_w1_slave,
)
from devices.codecs.mqtt_conventions import (
    BloodPressureJsonConvention,
    TasmotaConvention,
    Zigbee2MqttConvention,
)

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = ROOT / "tests" / "data" / "bu353-glonass" / "bu353-glonass.nmea"


def rate(fn: Callable[[], int], seconds: float) -> float:
    """Frames per second of ``fn`` (which returns how many frames it did)."""
    fn()  # warm up
    frames, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        frames += fn()
    return frames / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per codec (default 1.0)")
    args = parser.parse_args()

    nmea = [ln.encode() + b"\r\n" for ln in CAPTURE.read_text().splitlines() if ln.startswith("$")]

    def pynmeagps_parse() -> int:
        for line in nmea:
            NMEAReader.parse(line, validate=VALCKSUM)
        return len(nmea)

    def assembler() -> int:
        asm = NmeaFixAssembler("car")
        for line in nmea:
            asm.decode(line, "car")
        asm.flush()
        return len(nmea)

    bpm = bytes.fromhex("1E8A0058007800DC070C050B321B3C00011300")
    htm = bytes.fromhex("066C0100FFE807021D173B3B06")
    w1 = b"72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
    text = TextTemperatureCodec()
    z2m, tas, bpj = Zigbee2MqttConvention(), TasmotaConvention(), BloodPressureJsonConvention()
    z2m_msg = ("zigbee2mqtt/room", b'{"temperature":21.3,"humidity":48.2,"battery":97,"linkquality":120}')
    tas_msg = ("tele/boiler/SENSOR", b'{"Time":"2021-07-17T17:29:51","DS18B20":{"Id":"000003287EF1","Temperature":24.7},"TempUnit":"C"}')
    bpj_msg = ("bp/bed2", b'{"systolic":120,"diastolic":80,"map":93,"pulse":70,"time":1700000000000}')

    def loop(fn: Callable[[], object], n: int = 100) -> Callable[[], int]:
        def run() -> int:
            for _ in range(n):
                fn()
            return n

        return run

    bp_reading = decode_blood_pressure(bpm, "cuff")
    rows: list[tuple[str, float, str]] = []
    floor = rate(pynmeagps_parse, args.seconds)
    ours = rate(assembler, args.seconds)
    rows.append(("nmea: pynmeagps.parse only (peer)", floor, "1.00"))
    rows.append(("nmea: NmeaFixAssembler", ours, f"{ours / floor:.2f} of peer"))
    cases: list[tuple[str, Callable[[], object]]] = [
        ("gatt.0x2A35 blood pressure (19 B)", lambda: decode_blood_pressure(bpm, "cuff")),
        ("gatt.0x2A1C temperature (13 B)", lambda: decode_temperature_measurement(htm, "t")),
        ("ds18b20.w1 w1_slave", lambda: decode_w1_slave(w1, "28-x")),
        ("text 'T=23.5C'", lambda: text.decode(b"T=23.5C", "t")),
        ("mqtt zigbee2mqtt", lambda: z2m.decode(*z2m_msg)),
        ("mqtt tasmota", lambda: tas.decode(*tas_msg)),
        ("mqtt bp.json", lambda: bpj.decode(*bpj_msg)),
        ("Reading.to_event_value (BP)", lambda: Reading.to_event_value(bp_reading)),
    ]
    for name, fn in cases:
        rows.append((name, rate(loop(fn), args.seconds), ""))

    width = max(len(r[0]) for r in rows)
    print(f"{'codec':<{width}}  {'frames/s':>12}  ratio")
    print(f"{'-' * width}  {'-' * 12}  -----")
    for name, fps, ratio in rows:
        print(f"{name:<{width}}  {fps:>12,.0f}  {ratio}")


if __name__ == "__main__":
    main()
