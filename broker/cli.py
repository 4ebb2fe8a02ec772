"""Command-line tools for the local log, with the names and flags of Kafka's own.

    edge-topics --create --topic news --partitions 2
    edge-console-producer --topic news --property parse.key=true --property key.separator=:
    edge-console-consumer --topic news --from-beginning --property print.key=true
    edge-consumer-groups --describe --group uplink

Each is also ``python -m broker <tool> ...``.  ``--data-dir`` (or
``$EDGE_DATA_DIR``) names the log; ``--bootstrap-server`` is accepted as
its alias so that muscle memory works.  Errors print one line and exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import __version__
from ._admin import KafkaAdminClient, NewPartitions
from ._config import parse_config_pairs, validate_topic_name
from ._consumer import KafkaConsumer
from ._errors import BrokerError, ConfigError, GroupIdNotFoundError
from ._producer import KafkaProducer
from ._records import NewTopic, TopicPartition
from ._storage import DB_NAME, require_log

ENV_DATA_DIR = "EDGE_DATA_DIR"


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "--data-dir", dest="data_dir",
        help=f"the log's data directory, the edge's data_dir (env ${ENV_DATA_DIR})",
    )
    p.add_argument(
        "--bootstrap-server", dest="bootstrap_server", metavar="DIR",
        help="accepted where it names the log's data directory (Kafka's habit); "
             "there is no broker to connect to",
    )
    return p


def _properties(pairs: Sequence[str] | None, known: dict[str, str]) -> dict[str, str]:
    """``--property KEY=VALUE`` pairs over the defaults in ``known``, each checked.

    Values are taken as given, not stripped: a separator may be a tab or a space.
    A name this tool does not know is an error, not a silent no-op (a typo'd
    print.key would print nothing new and say nothing).
    """
    out = dict(known)
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--property {pair!r}: expected KEY=VALUE, e.g. print.key=true")
        key = key.strip()
        if key not in known:
            raise ConfigError(f"--property {key}: unknown property; expected one of {', '.join(sorted(known))}")
        if known[key] in ("true", "false") and value.strip().lower() not in ("true", "false"):
            raise ConfigError(f"--property {key}: expected true or false, got {value!r}")
        if key == "key.separator" and not value:
            raise ConfigError("--property key.separator: expected at least one character, got ''")
        out[key] = value.strip().lower() if known[key] in ("true", "false") else value
    return out


def _at_least(value: int | None, least: int, flag: str) -> None:
    if value is not None and value < least:
        raise ConfigError(f"{flag}: expected an integer >= {least}, got {value}")


def _need_dir(args: argparse.Namespace, *, create: bool = False) -> str:
    """The log's directory from the arguments; unless ``create``, one that holds a log already.

    Only the tools that write records or topics may start a new log: a mistyped path
    given to ``--list`` must not leave a fresh empty log behind.
    """
    given = args.data_dir
    if args.bootstrap_server is not None:
        bs = args.bootstrap_server
        if not Path(bs, DB_NAME).is_file():
            raise ConfigError(
                f"--bootstrap-server {bs}: this tool reads the box's log directory, it does not "
                f"connect to a broker, and {bs} is no log directory; pass --data-dir DIR (the edge's "
                f"data_dir, e.g. /var/lib/edge/log) or set ${ENV_DATA_DIR}"
            )
        if given is not None and Path(given) != Path(bs):
            raise ConfigError(f"--data-dir {given} and --bootstrap-server {bs} name different logs")
        given = bs
    if given is None:
        given = os.environ.get(ENV_DATA_DIR)
    if not given:
        raise ConfigError(f"no log given: pass --data-dir DIR or set ${ENV_DATA_DIR}")
    if not create:
        require_log(given)
    return given


# -- topics ---------------------------------------------------------------------------------------

def topics(argv: Sequence[str] | None = None) -> int:
    """``kafka-topics``: create, list, describe, alter and delete topics."""
    p = _parser("edge-topics", "Create, list, describe, alter and delete topics of the local log.")
    action = p.add_mutually_exclusive_group(required=True)
    for name in ("create", "list", "describe", "alter", "delete"):
        action.add_argument(f"--{name}", action="store_true", help=f"{name} topics")
    p.add_argument("--topic", help="the topic name")
    p.add_argument("--partitions", type=int, help="number of partitions (create, or grow with --alter)")
    p.add_argument("--replication-factor", type=int, default=1, help="accepted for compatibility; must be 1")
    p.add_argument("--config", action="append", metavar="KEY=VALUE",
                   help="topic config: retention.ms, retention.bytes, priority (repeatable)")
    p.add_argument("--if-not-exists", action="store_true", help="with --create: no error if it exists")
    p.add_argument("--if-exists", action="store_true", help="with --delete/--alter: no error if it is missing")
    return _run(p, argv, _topics)


def _topics(args: argparse.Namespace) -> int:
    configs = parse_config_pairs(list(args.config or []))
    with KafkaAdminClient(data_dir=_need_dir(args, create=args.create)) as admin:
        if args.list:
            for name in admin.list_topics():
                print(name)
            return 0
        if args.describe:
            names = [args.topic] if args.topic else None
            for d in admin.describe_topics(names):
                conf = ",".join(f"{k}={v}" for k, v in d.config.items())
                print(f"Topic: {d.name}\tPartitionCount: {len(d.partitions)}\tRecords: {d.records}"
                      f"\tBytes: {d.size_bytes}\tConfigs: {conf}")
                for part in d.partitions:
                    print(f"\tTopic: {d.name}\tPartition: {part.partition}\tLogStartOffset: {part.log_start_offset}"
                          f"\tHighWatermark: {part.high_watermark}\tRecords: {part.records}\tBytes: {part.size_bytes}")
            return 0
        if not args.topic:
            raise ConfigError("--topic is required with --create, --alter and --delete")
        if args.create:
            if args.if_not_exists and args.topic in admin.list_topics():
                return 0
            partitions = 1 if args.partitions is None else args.partitions  # 0 is an error, not "default"
            admin.create_topics([NewTopic(args.topic, partitions, args.replication_factor, None, configs)])
            print(f"Created topic {args.topic}.")
        elif args.delete:
            if args.if_exists and args.topic not in admin.list_topics():
                return 0
            admin.delete_topics([args.topic])
            print(f"Deleted topic {args.topic}.")
        elif args.alter:
            if not configs and args.partitions is None:
                raise ConfigError("--alter needs --config KEY=VALUE or --partitions N")
            if args.if_exists and args.topic not in admin.list_topics():
                return 0
            if configs:
                admin.alter_topic_config(args.topic, configs)
            if args.partitions is not None:
                admin.create_partitions({args.topic: NewPartitions(args.partitions)})
            print(f"Altered topic {args.topic}.")
    return 0


# -- console producer -------------------------------------------------------------------------------

def console_producer(argv: Sequence[str] | None = None) -> int:
    """``kafka-console-producer``: one record per line of standard input."""
    p = _parser("edge-console-producer", "Write each line of standard input as a record.")
    p.add_argument("--topic", required=True)
    p.add_argument("--property", action="append", metavar="KEY=VALUE",
                   help="parse.key=true, key.separator=SEP (default tab), ignore.error=true")
    return _run(p, argv, _console_producer)


_PRODUCER_PROPERTIES = {"parse.key": "false", "key.separator": "\t", "ignore.error": "false"}
_CONSUMER_PROPERTIES = {"print.key": "false", "print.timestamp": "false", "print.partition": "false",
                        "print.offset": "false", "print.headers": "false", "key.separator": "\t"}


def _console_producer(args: argparse.Namespace) -> int:
    props = _properties(args.property, _PRODUCER_PROPERTIES)
    parse_key = props["parse.key"] == "true"
    sep = props["key.separator"]
    ignore_error = props["ignore.error"] == "true"
    sent, failed = [], 0
    with KafkaProducer(data_dir=_need_dir(args, create=True)) as producer:
        for lineno, raw in enumerate(sys.stdin.buffer, 1):
            line = raw.rstrip(b"\r\n")
            key = None
            if parse_key:
                k, found, v = line.partition(sep.encode())
                if not found:
                    msg = f"line {lineno}: no key separator {sep!r} found in {line[:60]!r}"
                    if not ignore_error:
                        raise ConfigError(msg)
                    print(f"warning: {msg}", file=sys.stderr)
                    failed += 1
                    continue
                key, line = k, v
            sent.append(producer.send(args.topic, line, key=key))
        producer.flush()
    errors = [exc for f in sent if (exc := f.exception()) is not None]
    if errors:
        raise errors[0]
    return 1 if failed and not ignore_error else 0


# -- console consumer -------------------------------------------------------------------------------

def console_consumer(argv: Sequence[str] | None = None) -> int:
    """``kafka-console-consumer``: print records as they arrive."""
    p = _parser("edge-console-consumer", "Print records of a topic to standard output.")
    p.add_argument("--topic", required=True)
    p.add_argument("--group", help="consumer group: start from its committed offsets and commit as it reads")
    p.add_argument("--from-beginning", action="store_true",
                   help="start from the earliest record when there is no committed offset")
    p.add_argument("--partition", type=int, help="read only this partition")
    p.add_argument("--offset", help="with --partition: earliest, latest or an offset number")
    p.add_argument("--max-messages", type=int, help="exit after this many records")
    p.add_argument("--timeout-ms", type=int, help="exit when no record came for this long")
    p.add_argument("--property", action="append", metavar="KEY=VALUE",
                   help="print.key, print.timestamp, print.partition, print.offset, print.headers =true; "
                        "key.separator (default tab)")
    return _run(p, argv, _console_consumer)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the consumer as Ctrl-C does: commit, count, exit 0


def _text(b: bytes | None) -> str:
    return "null" if b is None else b.decode("utf-8", "backslashreplace")


def _console_consumer(args: argparse.Namespace) -> int:
    props = _properties(args.property, _CONSUMER_PROPERTIES)
    flag = lambda name: props[name] == "true"  # noqa: E731
    sep = props["key.separator"]
    _at_least(args.max_messages, 1, "--max-messages")
    _at_least(args.timeout_ms, 0, "--timeout-ms")
    _at_least(args.partition, 0, "--partition")
    validate_topic_name(args.topic)
    if args.offset is not None and args.partition is None:
        raise ConfigError("--offset needs --partition (the offset of which partition?)")
    count = 0
    finished = False  # on an error, its one line is all that is printed
    timeout = args.timeout_ms if args.timeout_ms is not None else float("inf")
    consumer = KafkaConsumer(
        data_dir=_need_dir(args), group_id=args.group,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        consumer_timeout_ms=timeout,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.partition is not None:
            tp = TopicPartition(args.topic, args.partition)
            consumer.assign([tp])
            if args.offset in (None, "latest"):
                consumer.seek_to_end(tp) if not args.from_beginning else consumer.seek_to_beginning(tp)
            elif args.offset == "earliest":
                consumer.seek_to_beginning(tp)
            else:
                try:
                    consumer.seek(tp, int(args.offset))
                except ValueError:
                    raise ConfigError(f"--offset: expected earliest, latest or a number, got {args.offset!r}") from None
        else:
            if args.topic not in consumer.topics():
                print(f"warning: topic {args.topic!r} does not exist yet; waiting for it", file=sys.stderr)
            consumer.subscribe([args.topic])
        out = sys.stdout
        for rec in consumer:
            parts = []
            if flag("print.timestamp"):
                parts.append(f"CreateTime:{rec.timestamp}")
            if flag("print.partition"):
                parts.append(f"Partition:{rec.partition}")
            if flag("print.offset"):
                parts.append(f"Offset:{rec.offset}")
            if flag("print.headers"):
                parts.append(",".join(f"{k}:{_text(v)}" for k, v in rec.headers) or "NO_HEADERS")
            if flag("print.key"):
                parts.append(_text(rec.key))
            parts.append(_text(rec.value))
            out.write(sep.join(parts) + "\n")
            out.flush()
            count += 1
            if args.max_messages is not None and count >= args.max_messages:
                break
        finished = True
    except KeyboardInterrupt:
        finished = True
    finally:
        consumer.close()
        if finished:
            print(f"Processed a total of {count} messages", file=sys.stderr)
    return 0


# -- consumer groups ----------------------------------------------------------------------------------

def consumer_groups(argv: Sequence[str] | None = None) -> int:
    """``kafka-consumer-groups``: list, describe, reset and delete groups."""
    p = _parser("edge-consumer-groups", "List, describe (with lag), reset and delete consumer groups.")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true")
    action.add_argument("--describe", action="store_true")
    action.add_argument("--reset-offsets", action="store_true")
    action.add_argument("--delete", action="store_true")
    p.add_argument("--group")
    p.add_argument("--topic", action="append", help="with --reset-offsets (repeatable)")
    p.add_argument("--all-topics", action="store_true", help="with --reset-offsets: every topic the group read")
    to = p.add_mutually_exclusive_group()
    to.add_argument("--to-earliest", action="store_true")
    to.add_argument("--to-latest", action="store_true")
    to.add_argument("--to-offset", type=int)
    to.add_argument("--to-datetime", help="ISO 8601, e.g. 2026-11-27T10:00:00Z (no zone: UTC)")
    to.add_argument("--to-timestamp", type=int, help="ms since the epoch")
    p.add_argument("--execute", action="store_true", help="apply the reset (without it: dry run)")
    p.add_argument("--dry-run", action="store_true", help="show the reset without applying it (the default)")
    p.add_argument("--output", choices=["table", "json"], default="table")
    return _run(p, argv, _consumer_groups)


def _consumer_groups(args: argparse.Namespace) -> int:
    with KafkaAdminClient(data_dir=_need_dir(args)) as admin:
        if args.list:
            for group, _ in admin.list_consumer_groups():
                print(group)
            return 0
        if not args.group:
            raise ConfigError("--group is required with --describe, --reset-offsets and --delete")
        if args.describe:
            d = admin.describe_consumer_group(args.group)
            if not d.offsets and not d.protected and args.group not in dict(admin.list_consumer_groups()):
                raise GroupIdNotFoundError(f"consumer group {args.group!r} does not exist")
            if args.output == "json":
                print(json.dumps({"group": d.group_id, "protected": d.protected,
                                  "protected_topics": d.protected_topics,
                                  "offsets": [o.__dict__ for o in d.offsets]}))
                return 0
            scope = f" of {', '.join(d.protected_topics)}" if d.protected_topics else ""
            print(f"GROUP {d.group_id}" + (f"  (protected: retention keeps what it has not read{scope})"
                                           if d.protected else ""))
            print(f"{'TOPIC':<24}{'PARTITION':>10}{'CURRENT-OFFSET':>16}{'LOG-END-OFFSET':>16}{'LAG':>10}")
            for o in d.offsets:
                cur = "-" if o.committed is None else o.committed
                lag = "-" if o.lag is None else o.lag
                print(f"{o.topic:<24}{o.partition:>10}{cur:>16}{o.log_end_offset:>16}{lag:>10}")
            return 0
        if args.delete:
            admin.delete_consumer_groups([args.group])
            print(f"Deleted consumer group {args.group}.")
            return 0
        # --reset-offsets
        topics = args.topic or []
        if args.all_topics:
            topics = sorted({tp.topic for tp in admin.list_consumer_group_offsets(args.group)})
            if not topics:
                raise GroupIdNotFoundError(f"consumer group {args.group!r} has committed no offsets: "
                                           "--all-topics names no topic; pass --topic T")
        if not topics:
            raise ConfigError("--reset-offsets needs --topic T (repeatable) or --all-topics")
        if args.to_earliest:
            to, value = "earliest", None
        elif args.to_latest:
            to, value = "latest", None
        elif args.to_offset is not None:
            to, value = "offset", args.to_offset
        elif args.to_timestamp is not None:
            to, value = "timestamp", args.to_timestamp
        elif args.to_datetime:
            to, value = "timestamp", _parse_datetime(args.to_datetime)
        else:
            raise ConfigError("--reset-offsets needs one of --to-earliest, --to-latest, --to-offset, "
                              "--to-datetime, --to-timestamp")
        plan = admin.reset_consumer_group_offsets(args.group, topics, to, value, execute=args.execute)
        print(f"{'GROUP':<20}{'TOPIC':<24}{'PARTITION':>10}{'NEW-OFFSET':>12}")
        for tp, off in sorted(plan.items()):
            print(f"{args.group:<20}{tp.topic:<24}{tp.partition:>10}{off:>12}")
        if not args.execute:
            print("(dry run: add --execute to apply)", file=sys.stderr)
    return 0


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _parse_datetime(text: str) -> int:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--to-datetime: expected ISO 8601 like 2026-11-27T10:00:00Z, got {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # Whole ms by integer arithmetic: the float timestamp() truncates .320 s to 319 ms.
    return (dt - _EPOCH) // timedelta(milliseconds=1)


# -- serve ----------------------------------------------------------------------------------------

ENV_LISTEN = "EDGE_KAFKA_LISTEN"


def _wire() -> Any:
    # Loaded by `serve` alone: the listener's schema library (kio) costs a second at import
    # where hypothesis is installed, which every other tool would pay for nothing.
    return importlib.import_module("broker.wire")


def serve(argv: Sequence[str] | None = None) -> int:
    """``edge-broker serve``: Kafka's wire protocol over the log, for any Kafka client."""
    p = _parser("edge-broker serve", "Serve the local log to Kafka clients (kafka-python, aiokafka, "
                "kcat, Kafka's tools) over Kafka's wire protocol.")
    p.add_argument("--listen", default=os.environ.get(ENV_LISTEN, "127.0.0.1:9092"), metavar="HOST:PORT",
                   help=f"the address to bind, loopback unless authentication is configured "
                        f"(env ${ENV_LISTEN}; default 127.0.0.1:9092; port 0: any free port)")
    # argparse applies type=int to a string default too, so a bad $EDGE_KAFKA_MAX_REQUEST_BYTES is
    # refused with the option's name rather than ignored.
    p.add_argument("--max-request-bytes", type=int, default=os.environ.get("EDGE_KAFKA_MAX_REQUEST_BYTES"),
                   help="close a connection that sends a larger request (env $EDGE_KAFKA_MAX_REQUEST_BYTES; "
                        "default 10 MiB)")
    p.add_argument("--auto-create-topics", action="store_true",
                   default=os.environ.get("EDGE_KAFKA_AUTO_CREATE_TOPICS", "").lower() in ("1", "true", "yes"),
                   help="create a topic a client names in Metadata or Produce (env "
                        "$EDGE_KAFKA_AUTO_CREATE_TOPICS=true; off by default)")
    sec = p.add_argument_group("security", "SASL users come from $EDGE_KAFKA_SASL_USERS "
                               "(user:password,...) or --sasl-users-file, never from the command line")
    sec.add_argument("--sasl-mechanism", action="append", default=None, metavar="MECH",
                     help="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; repeat for several "
                          "(env $EDGE_KAFKA_SASL_MECHANISMS, comma-separated; default: all three when users are given)")
    sec.add_argument("--sasl-users-file", default=os.environ.get("EDGE_KAFKA_SASL_USERS_FILE"), metavar="FILE",
                     help="user:password lines, mode 600 (env $EDGE_KAFKA_SASL_USERS_FILE)")
    for flag, what in (("cert", "the listener's certificate chain (PEM)"), ("key", "its private key (PEM)"),
                       ("ca", "a CA whose client certificates are required (PEM)")):
        env = f"EDGE_KAFKA_TLS_{flag.upper()}"
        sec.add_argument(f"--tls-{flag}", default=os.environ.get(env), metavar="FILE",
                         help=f"{what} (env ${env})")
    return _run(p, argv, _serve)


def _serve(args: argparse.Namespace) -> int:
    wire = _wire()
    host, port = wire.parse_listen(args.listen)
    options: dict[str, Any] = {"auto_create_topics": args.auto_create_topics}
    if args.max_request_bytes is not None:
        options["max_request_bytes"] = args.max_request_bytes
    mechanisms = args.sasl_mechanism or [m.strip() for m in os.environ.get(
        "EDGE_KAFKA_SASL_MECHANISMS", "").split(",") if m.strip()]
    options["security"] = importlib.import_module("broker.wire._sasl_api").listener_security(
        mechanisms=mechanisms, users_file=args.sasl_users_file, tls_cert=args.tls_cert,
        tls_key=args.tls_key, tls_ca=args.tls_ca)
    config = wire.ListenerConfig(host=host, port=port, **options)
    data_dir = _need_dir(args, create=True)

    def ready(server: Any) -> None:
        print(f"edge-broker serve: listening on {host}:{server.port} for the log in {data_dir}",
              file=sys.stderr, flush=True)

    wire.serve(config, data_dir, ready)
    return 0


# -- plumbing ----------------------------------------------------------------------------------------

def _run(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
         body: Callable[[argparse.Namespace], int]) -> int:
    args = parser.parse_args(argv)
    try:
        return body(args)
    except BrokerError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `| head` closed the pipe: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


TOOLS: dict[str, Callable[[Sequence[str] | None], int]] = {
    "topics": topics,
    "console-producer": console_producer,
    "console-consumer": console_consumer,
    "consumer-groups": consumer_groups,
    "serve": serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m broker TOOL ...``: dispatch to one of the tools."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m broker {" + ",".join(TOOLS) + "} [options]\n\n"
              "Kafka's command-line tools for the local log; each takes --help.")
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"broker {__version__}")
        return 0
    tool = TOOLS.get(argv[0])
    if tool is None:
        print(f"broker: unknown tool {argv[0]!r}; expected one of {', '.join(TOOLS)}", file=sys.stderr)
        return 2
    return tool(argv[1:])


def _entry(tool: Callable[[Sequence[str] | None], int]) -> Callable[[], None]:
    return lambda: sys.exit(tool(None))


topics_main = _entry(topics)
console_producer_main = _entry(console_producer)
console_consumer_main = _entry(console_consumer)
consumer_groups_main = _entry(consumer_groups)
