"""Which APIs the listener serves: api_key -> (min_version, max_version, handler).

ApiVersions answers exactly what is registered here, so registering is all it takes
for clients to start using an API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kio.index import KioIndexError, load_request_schema

from .._errors import ConfigError

if TYPE_CHECKING:
    from ._context import Connection, ServerContext
    from ._framing import RequestHeader

#: ``async def handler(ctx, conn, header, request) -> response`` (None: send no response,
#: as for a Produce with acks=0).
Handler = Callable[["ServerContext", "Connection", "RequestHeader", Any], Awaitable[Any]]

#: ``gate(conn, header)``: a reason to close the connection instead of serving the
#: request, or None.  SASL uses it to refuse everything before authentication.
Gate = Callable[["Connection", "RequestHeader"], str | None]


@dataclass(frozen=True)
class Api:
    api_key: int
    min_version: int
    max_version: int
    handler: Handler

    def supports(self, version: int) -> bool:
        return self.min_version <= version <= self.max_version


class Registry:
    """The APIs one server serves, and the gates every request passes first."""

    def __init__(self) -> None:
        self._apis: dict[int, Api] = {}
        self.gates: list[Gate] = []

    def register(self, api_key: int, min_version: int, max_version: int, handler: Handler) -> None:
        """Serve ``api_key`` at ``min_version..max_version`` with ``handler``.

        Raises ConfigError if the key is registered already or a version has no schema.
        """
        if api_key in self._apis:
            raise ConfigError(f"api_key {api_key} is registered already")
        if not 0 <= min_version <= max_version:
            raise ConfigError(f"api_key {api_key}: versions {min_version}..{max_version}")
        for v in (min_version, max_version):
            try:
                load_request_schema(api_key, v)
            except KioIndexError as exc:
                raise ConfigError(f"api_key {api_key} v{v}: no message schema ({exc})") from None
        self._apis[api_key] = Api(api_key, min_version, max_version, handler)

    def get(self, api_key: int) -> Api | None:
        return self._apis.get(api_key)

    def apis(self) -> list[Api]:
        return sorted(self._apis.values(), key=lambda a: a.api_key)

    def add_gate(self, gate: Gate) -> None:
        self.gates.append(gate)
