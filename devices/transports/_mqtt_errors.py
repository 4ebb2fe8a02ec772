"""Why an MQTT connection failed, in words an operator can act on (never a secret in them).

paho hands a refused CONNACK to ``on_connect`` as a reason code and swallows the
``OSError`` of a failed TCP or TLS connect in its thread (it only retries); the
transport turns both into one line for its ``last_error`` (shown by /health and
``edge status``) and its log.
"""

from __future__ import annotations

import ssl

# CONNACK reasons (3.1.1 codes 4 and 5 arrive as these MQTT 5 names) and what to check.
_HINTS = {
    "Bad user name or password": "check the device's username and password",
    "Not authorized": "check the device's username and password and the broker's ACL",
    "Client identifier not valid": "check client_id",
    "Unsupported protocol version": 'the broker does not speak this protocol: try protocol = "3.1.1"',
    "Server unavailable": "the broker is not accepting clients now",
    "Banned": "the broker banned this client",
}


def refusal_text(reason: object) -> str:
    """A refused CONNACK: the broker's reason and what to check."""
    words = str(reason)
    hint = _HINTS.get(words)
    return f"broker refused the connection: {words}" + (f" ({hint})" if hint else "")


def connect_error_text(exc: BaseException, broker: str, tls: bool, ca_file: str | None) -> str:
    """A connect that failed before any CONNACK (TCP, DNS or the TLS handshake)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or str(exc)
        if "hostname" in why.lower() or "ip address mismatch" in why.lower():
            hint = f"the broker's certificate does not name {broker.rsplit(':', 1)[0]!r}"
        elif "issuer" in why.lower() or "self-signed" in why.lower() or "self signed" in why.lower():
            hint = (f"the broker's certificate is not signed by ca_file {ca_file}" if ca_file
                    else "the broker's certificate is not signed by a CA the system trusts: "
                         "set ca_file")
        elif "expired" in why.lower():
            hint = "the broker's certificate has expired (or this box's clock is wrong)"
        else:
            hint = "check ca_file and the broker's certificate"
        return f"TLS to {broker}: certificate verify failed: {why} ({hint})"
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or exc)
        if "CERTIFICATE_REQUIRED" in reason:
            hint = "the broker wants a client certificate: set cert_file and key_file"
        elif "UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason:
            hint = "the broker does not accept the client certificate (cert_file)"
        elif "WRONG_VERSION_NUMBER" in reason:
            hint = "is the broker's port a TLS listener?"
        else:
            hint = "check the TLS settings on both sides"
        return f"TLS to {broker}: handshake failed: {reason} ({hint})"
    if isinstance(exc, ConnectionResetError) and tls:
        return (f"TLS to {broker}: the broker closed the connection during the handshake "
                "(does it require a client certificate: cert_file and key_file?)")
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot connect to {broker}: connection refused (is the broker running there?)"
    if isinstance(exc, TimeoutError):
        return f"cannot connect to {broker}: timed out"
    return f"cannot connect to {broker}: {exc.strerror or exc}" if isinstance(exc, OSError) \
        else f"cannot connect to {broker}: {type(exc).__name__}: {exc}"
