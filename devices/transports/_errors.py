"""Transport leaves under the package's error tree (root in devices._errors).

    DeviceError
     └── TransportError         (devices._errors) a port, socket or file failed
          ├── DeviceUnavailable the port/broker/directory is not there now (retriable)
          └── TransportClosed   used after a deliberate close() (not retriable)

Foreign errors (serial, OSError, paho) are translated where they are caught,
with ``raise ... from exc``.
"""

from __future__ import annotations

from devices._errors import TransportError

__all__ = ["DeviceUnavailable", "TransportClosed", "TransportError"]


class DeviceUnavailable(TransportError):
    """The device (port, broker, sysfs directory) is absent or went away; retry later."""

    retriable = True


class TransportClosed(TransportError):
    """The transport was closed on purpose; it will not reconnect."""

    retriable = False
