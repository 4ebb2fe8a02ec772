"""``python -m edge.uplink``: run one uplink until SIGTERM/SIGINT.

Every option can come from the environment variable named in ``--help``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from edge._exit import EX_TEMPFAIL

from ._config import UplinkConfig
from ._errors import EdgeError, UplinkLockedError
from ._local import check_local_topics
from ._uplink import Uplink


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m edge.uplink", description=__doc__)
    p.add_argument("--edge-id", default=env("EDGE_ID"), help="this box's id (env EDGE_ID)")
    p.add_argument("--bootstrap-servers", default=env("EDGE_UPLINK_BOOTSTRAP_SERVERS"),
                   help="upstream host:port,... (env EDGE_UPLINK_BOOTSTRAP_SERVERS)")
    p.add_argument("--data-dir", default=env("EDGE_DATA_DIR"), help="the local log (env EDGE_DATA_DIR)")
    p.add_argument("--topic", action="append", default=[], metavar="LOCAL=UPSTREAM",
                   help="a topic to replicate (repeat; env EDGE_UPLINK_TOPICS, comma-separated)")
    p.add_argument("--delivery", default=env("EDGE_UPLINK_DELIVERY", "exactly-once"),
                   help="exactly-once or at-least-once (env EDGE_UPLINK_DELIVERY)")
    p.add_argument("--compression", default=env("EDGE_UPLINK_COMPRESSION", "lz4"),
                   help="lz4, zstd or none (env EDGE_UPLINK_COMPRESSION)")
    p.add_argument("--batch-records", type=int, default=int(env("EDGE_UPLINK_BATCH_RECORDS", "1000")),
                   help="records per transaction (env EDGE_UPLINK_BATCH_RECORDS)")
    p.add_argument("--security-protocol", default=env("EDGE_UPLINK_SECURITY_PROTOCOL", "PLAINTEXT"),
                   help="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (env EDGE_UPLINK_SECURITY_PROTOCOL)")
    p.add_argument("--sasl-mechanism", default=env("EDGE_UPLINK_SASL_MECHANISM"),
                   help="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (env EDGE_UPLINK_SASL_MECHANISM); the"
                        " user and password come only from EDGE_UPSTREAM_SASL_USERNAME and"
                        " EDGE_UPSTREAM_SASL_PASSWORD, never from the command line")
    p.add_argument("--ssl-cafile", default=env("EDGE_UPLINK_SSL_CAFILE"),
                   help="PEM file of the CA that signed the cluster's certificates"
                        " (env EDGE_UPLINK_SSL_CAFILE; default: the system's CAs)")
    p.add_argument("--status-interval", type=float, default=0.0,
                   help="print a JSON status line every this many seconds (0: never)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    pairs = args.topic or [t for t in os.environ.get("EDGE_UPLINK_TOPICS", "").split(",") if t]
    if not pairs:
        print("edge.uplink: --topic: expected at least one LOCAL=UPSTREAM (or EDGE_UPLINK_TOPICS)",
              file=sys.stderr)
        return 2
    try:
        topics = dict(pair.split("=", 1) for pair in pairs)
    except ValueError:
        print(f"edge.uplink: --topic: expected LOCAL=UPSTREAM, got {pairs}", file=sys.stderr)
        return 2
    try:
        config = UplinkConfig(
            edge_id=args.edge_id, bootstrap_servers=args.bootstrap_servers, data_dir=args.data_dir,
            topics=topics, delivery=args.delivery,
            compression=None if args.compression == "none" else args.compression,
            batch_records=args.batch_records, security_protocol=args.security_protocol,
            sasl_mechanism=args.sasl_mechanism, ssl_cafile=args.ssl_cafile)
        check_local_topics(config)
    except EdgeError as exc:
        print(f"edge.uplink: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_run(config, args.status_interval))


async def _run(config: UplinkConfig, status_interval: float) -> int:
    uplink = Uplink(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, uplink.stop)
    # run() raises it itself, so it is a direct member of the TaskGroup's group.
    locked: BaseException | None = None
    try:
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(uplink.run())
            while status_interval > 0 and not task.done():
                s = uplink.status()
                print(json.dumps({"state": s.state.value, "records_total": s.records_total,
                                  "lag_records": s.lag_records, "last_error": s.last_error}),
                      flush=True)
                await asyncio.wait([task], timeout=status_interval)
    except* UplinkLockedError as group:
        locked = group.exceptions[0]
    if locked is not None:
        print(f"edge.uplink: {locked}", file=sys.stderr)
        return EX_TEMPFAIL   # another uplink holds the log: may clear
    return 3 if uplink.state.value == "fenced" else 0


if __name__ == "__main__":
    sys.exit(main())
