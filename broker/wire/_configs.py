"""DescribeConfigs, AlterConfigs, IncrementalAlterConfigs for the log's topic configs.

A topic has three: ``retention.ms``, ``retention.bytes`` and ``priority`` (higher drains
upstream first and is dropped last).  AlterConfigs replaces a topic's configs as Kafka's
does (a name not given returns to the log's default); IncrementalAlterConfigs SETs or
DELETEs (back to the default) one name at a time.  A broker resource is described with
no configs: the box's settings live in its own config file, not in Kafka's names.
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from .._errors import BrokerError
from ._context import Connection, ServerContext
from ._framing import RequestHeader
from ._registry import Registry
from ._schema import build, nested, response_class
from ._topics_admin import error_code

DESCRIBE, ALTER, INCREMENTAL = 32, 33, 44
TOPIC, BROKER = 2, 4
_SET, _DELETE = 0, 1
_DEFAULT_CONFIG, _TOPIC_CONFIG = 5, 1  # config_source: DEFAULT_CONFIG, DYNAMIC_TOPIC_CONFIG


def install(registry: Registry) -> None:
    registry.register(DESCRIBE, 0, 4, describe_configs)
    registry.register(ALTER, 0, 2, alter_configs)
    registry.register(INCREMENTAL, 0, 1, incremental_alter_configs)


def _describe_topic(ctx: ServerContext, name: str) -> tuple[dict[str, str], dict[str, str]]:
    """(the topic's configs, the log's defaults), blocking."""
    desc = ctx.admin.describe_topics([name])[0]
    return dict(desc.config), ctx.log.config.default_topic_config.to_kafka()


async def describe_configs(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_class(DESCRIBE, version)
    result_cls = nested(cls, "DescribeConfigsResult")
    entry_cls = nested(cls, "DescribeConfigsResourceResult")
    results = []
    for res in request.resources:
        code, msg, entries = ErrorCode.none, None, []
        if res.resource_type == TOPIC:
            try:
                configs, defaults = await ctx.run_blocking(_describe_topic, ctx, res.resource_name)
            except BrokerError as exc:
                code, msg = error_code(exc), str(exc)[:300]
            else:
                wanted = res.configuration_keys
                for name, value in sorted(configs.items()):
                    if wanted is not None and name not in wanted:
                        continue
                    default = defaults.get(name) == value
                    entries.append(build(
                        entry_cls, name=name, value=value, read_only=False, is_default=default,
                        config_source=_DEFAULT_CONFIG if default else _TOPIC_CONFIG, is_sensitive=False,
                        synonyms=(), config_type=5, documentation=None))  # LONG
        elif res.resource_type != BROKER:
            code, msg = ErrorCode.invalid_request, f"resource type {res.resource_type} has no configs here"
        results.append(build(result_cls, error_code=code, error_message=msg, resource_type=res.resource_type,
                             resource_name=res.resource_name, configs=tuple(entries)))
    return build(cls, throttle_time=datetime.timedelta(0), results=tuple(results))


def _replace(ctx: ServerContext, name: str, given: dict[str, str]) -> None:
    defaults = ctx.log.config.default_topic_config.to_kafka()
    ctx.admin.alter_topic_config(name, {**defaults, **given})


def _incremental(ctx: ServerContext, name: str, ops: list[tuple[str, int, str | None]]) -> None:
    defaults = ctx.log.config.default_topic_config.to_kafka()
    changes: dict[str, str] = {}
    for key, op, value in ops:
        if op == _SET and value is not None:
            changes[key] = value
        elif op == _DELETE:
            if key not in defaults:
                raise BrokerError(f"unknown topic config {key!r}; expected one of {', '.join(sorted(defaults))}")
            changes[key] = defaults[key]
        else:
            raise BrokerError(f"{key}: only SET and DELETE apply to a topic's single-valued configs")
    ctx.admin.alter_topic_config(name, changes)


async def _alter(ctx: ServerContext, header: RequestHeader, request: Any, api_key: int, incremental: bool) -> Any:
    cls = response_class(api_key, header.api_version)
    result_cls = nested(cls, "AlterConfigsResourceResponse")
    results = []
    for res in request.resources:
        code, msg = ErrorCode.none, None
        if res.resource_type != TOPIC:
            code, msg = ErrorCode.invalid_request, "only topic configs can be altered here"
        else:
            try:
                if incremental:
                    ops = [(c.name, c.config_operation, c.value) for c in res.configs]
                    if not request.validate_only:
                        await ctx.run_blocking(_incremental, ctx, res.resource_name, ops)
                else:
                    given = {c.name: c.value for c in res.configs if c.value is not None}
                    if not request.validate_only:
                        await ctx.run_blocking(_replace, ctx, res.resource_name, given)
            except BrokerError as exc:
                code, msg = error_code(exc), str(exc)[:300]
                if code is ErrorCode.unknown_server_error:
                    code = ErrorCode.invalid_config
        results.append(build(result_cls, error_code=code, error_message=msg, resource_type=res.resource_type,
                             resource_name=res.resource_name))
    return build(cls, throttle_time=datetime.timedelta(0), responses=tuple(results))


async def alter_configs(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    return await _alter(ctx, header, request, ALTER, incremental=False)


async def incremental_alter_configs(ctx: ServerContext, conn: Connection, header: RequestHeader,
                                    request: Any) -> Any:
    return await _alter(ctx, header, request, INCREMENTAL, incremental=True)
