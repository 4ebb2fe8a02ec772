"""The reported document (PROTOCOL.md) from the service's /health and the control state.

Pure: ``reported(...)`` is a function of dicts; ``signature`` is the part whose change
is worth a record (not rates or lag, which move all the time: the heartbeat carries them).
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

__all__ = ["reported", "signature", "software_version", "unhealthy"]


def software_version() -> str:
    try:
        return metadata.version("edge-appliance")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def reported(edge_id: str, now_ms: int, health: dict[str, Any], applied: dict[str, Any],
             desired_result: dict[str, Any] | None, last_error: str | None,
             uplink_lag_s: float | None = None, groups: list[str] | None = None) -> dict[str, Any]:
    """The reported document of this box now; ``groups`` its ``[control] groups``, so the
    fleet's side knows from one compacted read which boxes a group push addresses."""
    devices = {name: {"state": d.get("state") or ("up" if d.get("connected") else "down"),
                      "connected": bool(d.get("connected")), "rate": d.get("rate_per_s"),
                      "last_error": d.get("last_error")}
               for name, d in (health.get("devices") or {}).items()}
    log = health.get("log") or {}
    uplink = health.get("uplink") or {}
    return {
        "edge_id": edge_id,
        "ts_ms": now_ms,
        "software_version": software_version(),
        "groups": sorted(groups or []),
        "applied": applied,
        "desired_result": desired_result,
        "devices": devices,
        "streams": {name: {"ok": bool(s.get("ok"))} for name, s in (health.get("streams") or {}).items()},
        "log": {"bytes": log.get("bytes"), "quota": log.get("quota_bytes"),
                "records": log.get("records")},
        "uplink": {"state": uplink.get("state", "disabled"), "lag_records": uplink.get("lag_records"),
                   "lag_s": uplink_lag_s, "resending": uplink.get("resending") or {}},
        "clock": health.get("clock"),
        "last_error": last_error or uplink.get("last_error"),
    }


def signature(document: dict[str, Any]) -> Any:
    """What of a reported document, changed, is worth an early record."""
    return (document["applied"], document["desired_result"],
            {n: (d["connected"], d["state"]) for n, d in document["devices"].items()},
            document["streams"], document["uplink"]["state"], document["clock"],
            document["last_error"])


def unhealthy(health: dict[str, Any]) -> list[str]:
    """What of /health keeps a new config from counting as healthy."""
    problems = [f"device {name} not connected ({d.get('last_error') or d.get('state')})"
                for name, d in (health.get("devices") or {}).items() if not d.get("connected")]
    problems += [f"stream {name} not running ({s.get('last_error') or s.get('state')})"
                 for name, s in (health.get("streams") or {}).items() if not s.get("ok")]
    uplink = health.get("uplink")
    if uplink is not None and not uplink.get("ok"):
        problems.append(f"uplink {uplink.get('state')}: {uplink.get('last_error')}")
    return problems


