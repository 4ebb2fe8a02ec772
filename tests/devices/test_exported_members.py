"""devices.__all__ is what we mean to export, and every name in it exists."""

import devices


def test_all_names_resolve():
    for name in devices.__all__:
        assert hasattr(devices, name), name


def test_all_is_sorted_and_unique():
    assert list(devices.__all__) == sorted(set(devices.__all__), key=lambda n: (not n.isupper(), n))


def test_codec_api_is_exported():
    expected = {
        "Arrival",
        "CODECS",
        "CONVENTIONS",
        "Codec",
        "Convention",
        "DeadLetter",
        "DecodeError",
        "DeviceError",
        "NmeaFixAssembler",
        "Reading",
        "SpecialValue",
        "TimeSource",
        "decode_blood_pressure",
        "encode_blood_pressure",
        "encode_fix",
    }
    assert expected <= set(devices.__all__)


def test_decode_error_is_a_device_error_and_not_retriable():
    err = devices.DecodeError(b"\x00", "bad", "codec")
    assert isinstance(err, devices.DeviceError)
    assert err.retriable is False
    assert devices.TransportError.retriable is True


def test_supervision_is_exported():
    expected = {"Backoff", "DEVICE_RESTART", "STREAMS_RESTART", "UPLINK_RESTART", "Failure",
                "stop_child", "supervise"}
    assert expected <= set(devices.__all__)
