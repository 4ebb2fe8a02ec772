"""Query parameters of the API: parsed or refused with a 400 that says what was expected."""

from __future__ import annotations

from aiohttp import web

__all__ = ["BadRequest", "bad", "choice", "integer"]


class BadRequest(web.HTTPBadRequest):
    """400 with ``{"error": "..."}``."""

    def __init__(self, message: str) -> None:
        import json

        super().__init__(text=json.dumps({"error": message}), content_type="application/json")


def bad(message: str) -> BadRequest:
    return BadRequest(message)


def integer(request: web.Request, name: str, default: int | None = None, *,
            lo: int | None = None, hi: int | None = None) -> int | None:
    """``?name=`` as an integer in [lo, hi], ``default`` when absent."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad(f"{name}: expected an integer, got {raw!r:.60}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        span = f"{lo if lo is not None else '...'}..{hi if hi is not None else '...'}"
        raise bad(f"{name}: expected an integer in {span}, got {value}")
    return value


def choice(request: web.Request, name: str, options: tuple[str, ...], default: str) -> str:
    raw = request.query.get(name, default)
    if raw not in options:
        raise bad(f"{name}: expected one of {', '.join(options)}, got {raw!r:.60}")
    return raw
