"""The TLS context of an MQTT connection: the CA, an optional client certificate, hostname checks.

Made here rather than by paho's ``tls_set`` for two reasons: ``create_default_context``
gives TLS 1.2 or newer with certificate and hostname checks on, and the sockets it makes
close themselves when the handshake fails (paho leaves such a socket open, one more
with every retry against a broker whose certificate does not verify).
"""

from __future__ import annotations

import ssl


class _ClosingSSLSocket(ssl.SSLSocket):
    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()  # nobody else holds it: paho's reconnect only sees the error
            raise


def client_context(ca_file: str | None, cert_file: str | None, key_file: str | None,
                   check_hostname: bool = True) -> ssl.SSLContext:
    """A client context trusting ``ca_file`` (None: the system's store); raises OSError/SSLError."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    context.check_hostname = check_hostname
    context.sslsocket_class = _ClosingSSLSocket
    return context
