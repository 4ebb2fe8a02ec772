"""The event value's text is what json.dumps made of it, byte for byte.

EventWriter encodes values with a C encoder built once (not json.dumps per event); what
other code and older logs hold must not change.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from devices import Reading, SpecialValue
from edge._writer import _encode_value

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(list(SpecialValue)))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, max_size=6))
def test_event_value_text_is_json_dumps(fields: dict) -> None:
    value = Reading("dev-1", "temperature", "test", fields).to_event_value()
    assert _encode_value(value) == json.dumps(value, separators=(",", ":"))


def test_event_value_text_of_a_typical_reading() -> None:
    value = Reading("car-1", "gps", "nmea", {"lat": 52.5, "lon": 13.25, "speed_mps": float("nan"),
                                              "fix": "3D", "sats": 9, "note": "\u00fc\"\n"}).to_event_value()
    text = _encode_value(value)
    assert text == '{"lat":52.5,"lon":13.25,"speed_mps":null,"speed_mps_status":"NaN","fix":"3D","sats":9,"note":"\\u00fc\\"\\n"}'
    assert json.loads(text) == value
