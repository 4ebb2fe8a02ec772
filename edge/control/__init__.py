"""The fleet control channel: signed desired config and commands in, reported state out.

The wire contract both sides share is in PROTOCOL.md beside this file.

>>> private, public = generate_keypair("/etc/edge/keys")
>>> value = sign(desired_payload("group:ward3", 7, {"devices": []}, issued_ms=0),
...              load_private_key(private))
>>> parse_desired(verify(value, [load_public_key(public)])).version
7
"""

from ._envelope import (
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    sign,
    verify,
)
from ._errors import REFUSAL_REASONS, ControlError, ControlRefused, KeyFileError
from ._messages import (
    COMMANDS,
    DEFAULT_TOPICS,
    DESIRED_RESULTS,
    RESULTS,
    Command,
    ControlTopics,
    Desired,
    command_payload,
    decode_json,
    desired_payload,
    edge_target,
    encode_json,
    group_target,
    parse_command,
    parse_desired,
    parse_target,
    result_payload,
)

__all__ = [
    "COMMANDS",
    "DEFAULT_TOPICS",
    "DESIRED_RESULTS",
    "REFUSAL_REASONS",
    "RESULTS",
    "Command",
    "ControlError",
    "ControlRefused",
    "ControlTopics",
    "Desired",
    "KeyFileError",
    "command_payload",
    "decode_json",
    "desired_payload",
    "edge_target",
    "encode_json",
    "generate_keypair",
    "group_target",
    "key_id",
    "load_private_key",
    "load_public_key",
    "parse_command",
    "parse_desired",
    "parse_target",
    "result_payload",
    "sign",
    "verify",
]
