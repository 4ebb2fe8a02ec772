"""ApiVersions: exactly the APIs and versions registered, so clients use nothing we lack."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.api_versions.v0.response import ApiVersion as ApiVersionV0
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsResponseV0
from kio.schema.errors import ErrorCode
from kio.static.primitive import i16

from ._context import Connection, ServerContext
from ._framing import RequestHeader
from ._registry import Registry
from ._schema import build, nested, response_class, write_response

API_KEY = 18
MIN_VERSION, MAX_VERSION = 0, 3


def install(registry: Registry) -> None:
    registry.register(API_KEY, MIN_VERSION, MAX_VERSION, handle)


async def handle(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    cls = response_class(API_KEY, header.api_version)
    item = nested(cls, "ApiVersion")
    keys = tuple(item(api_key=i16(a.api_key), min_version=i16(a.min_version), max_version=i16(a.max_version))
                 for a in ctx.registry.apis())
    return build(cls, error_code=ErrorCode.none, api_keys=keys, throttle_time=datetime.timedelta(0))


def unsupported_version_response(registry: Registry) -> bytes:
    """The body of ApiVersions v0 answering UNSUPPORTED_VERSION, with what is served."""
    keys = tuple(ApiVersionV0(api_key=i16(a.api_key), min_version=i16(a.min_version),
                              max_version=i16(a.max_version)) for a in registry.apis())
    body, _ = write_response(ApiVersionsResponseV0(error_code=ErrorCode.unsupported_version, api_keys=keys))
    return body
