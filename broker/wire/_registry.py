"""Which APIs the listener serves: api_key -> (min_version, max_version, handler).

ApiVersions answers exactly what is registered here, so registering is all it takes
for clients to start using an API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kio.schema.index import api_key_map, schema_name_map
from kio.static.constants import EntityType

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
        The check reads kio's index table only: importing every version's schema module
        here cost ~6 MB of RSS at start for versions no client may ever ask for (they
        load on first use, ``_schema.request_class``).
        """
        if api_key in self._apis:
            raise ConfigError(f"api_key {api_key} is registered already")
        if not 0 <= min_version <= max_version:
            raise ConfigError(f"api_key {api_key}: versions {min_version}..{max_version}")
        versions = schema_name_map.get(api_key_map.get(api_key, ""), {})
        for v in range(min_version, max_version + 1):
            if EntityType.request not in versions.get(v, {}):
                raise ConfigError(f"api_key {api_key} v{v}: no message schema in kio")
        self._apis[api_key] = Api(api_key, min_version, max_version, handler)

    def get(self, api_key: int) -> Api | None:
        return self._apis.get(api_key)

    def apis(self) -> list[Api]:
        return sorted(self._apis.values(), key=lambda a: a.api_key)

    def add_gate(self, gate: Gate) -> None:
        self.gates.append(gate)
