"""The signed envelope every desired state and command travels in (PROTOCOL.md).

The record value is JSON::

    {"v": 1, "key_id": "<16 hex>", "payload": "<base64 payload bytes>", "sig": "<base64>"}

The signature covers the payload *bytes* as sent, not a re-serialisation of the parsed
JSON, so neither side depends on the other's JSON formatting. Ed25519 through
``cryptography`` (pyca): small keys, deterministic signatures, aarch64 wheels.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ._errors import ControlRefused, KeyFileError

__all__ = [
    "ENVELOPE_VERSION",
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "sign",
    "verify",
]

ENVELOPE_VERSION = 1
PRIVATE_KEY_FILE = "control.key"
PUBLIC_KEY_FILE = "control.pub"


def key_id(public_key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of the sha256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """Payload bytes: compact, sorted JSON (any JSON verifies; this is what we send)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def sign(payload: Mapping[str, Any], private_key: Ed25519PrivateKey) -> bytes:
    """The record value carrying ``payload`` signed with ``private_key``."""
    body = encode_payload(payload)
    envelope = {
        "v": ENVELOPE_VERSION,
        "key_id": key_id(private_key.public_key()),
        "payload": base64.b64encode(body).decode(),
        "sig": base64.b64encode(private_key.sign(body)).decode(),
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def _keyring(
    public_keys: Mapping[str, Ed25519PublicKey] | Iterable[Ed25519PublicKey],
) -> dict[str, Ed25519PublicKey]:
    if isinstance(public_keys, Mapping):
        return dict(public_keys)
    return {key_id(k): k for k in public_keys}


def verify(
    value: bytes | None,
    public_keys: Mapping[str, Ed25519PublicKey] | Iterable[Ed25519PublicKey],
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """The payload of a signed record value, once its signature checks out.

    ``public_keys`` is a list of keys or a mapping from ``key_id`` to key. Raises
    ``ControlRefused``: ``unsigned`` (not an envelope, or no signature), ``malformed``
    (an envelope that does not parse, a payload that is not a JSON object),
    ``unknown_key`` (signed by a key this box does not hold), ``bad_signature``,
    ``too_large`` (a value over ``max_bytes``, refused before any of it is parsed).
    """
    if not value:
        raise ControlRefused("unsigned", "an empty record value")
    # Before json.loads and base64: a huge record from anyone who can produce to the topic
    # must not cost a small box its memory, signed or not.
    if max_bytes is not None and len(value) > max_bytes:
        raise ControlRefused("too_large", f"the record value is {len(value)} bytes, over the box's "
                             f"[control] max_record_bytes = {max_bytes}")
    try:
        envelope = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlRefused("unsigned", f"the record value is not a JSON envelope ({exc})") from None
    if not isinstance(envelope, dict) or "sig" not in envelope or "payload" not in envelope:
        raise ControlRefused("unsigned", "the record value is not a signed envelope (no payload and sig)")
    if envelope.get("v") != ENVELOPE_VERSION:
        raise ControlRefused("malformed", f"envelope version {envelope.get('v')!r}, expected 1")
    kid, body_b64, sig_b64 = envelope.get("key_id"), envelope["payload"], envelope["sig"]
    if not isinstance(kid, str) or not isinstance(body_b64, str) or not isinstance(sig_b64, str):
        raise ControlRefused("malformed", "key_id, payload and sig must be strings")
    try:
        body = base64.b64decode(body_b64, validate=True)
        sig = base64.b64decode(sig_b64, validate=True)
    except (binascii.Error, ValueError):
        raise ControlRefused("malformed", "payload or sig is not base64") from None
    key = _keyring(public_keys).get(kid)
    if key is None:
        raise ControlRefused("unknown_key", f"signed by key {kid!r}, which this box does not hold")
    try:
        key.verify(sig, body)
    except InvalidSignature:
        raise ControlRefused("bad_signature", f"the signature by key {kid} does not match the payload") from None
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlRefused("malformed", f"the payload is not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise ControlRefused("malformed", "the payload is not a JSON object")
    return payload


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key file ({exc.strerror or exc})") from exc


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM (PKCS#8, unencrypted) file ``path``."""
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: expected an Ed25519 key, got {type(key).__name__}")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM (SubjectPublicKeyInfo) file ``path``."""
    try:
        key = serialization.load_pem_public_key(_read(path))
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: expected an Ed25519 key, got {type(key).__name__}")
    return key


def generate_keypair(directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """A new key pair written to ``directory`` as control.key (mode 0600) and control.pub.

    Refuses (KeyFileError) to overwrite an existing private key: losing it means
    re-provisioning every box.
    """
    directory = Path(directory)
    private_path, public_path = directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{private_path}: exists already; refusing to overwrite a signing key") from None
    except OSError as exc:
        raise KeyFileError(f"{private_path}: cannot create ({exc.strerror or exc})") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path
