"""`workstation-server`: serve the API, and the operator's commands on the same database.

    workstation-server serve [--database URL] [--host 127.0.0.1] [--port 8443] [--tls-cert F --tls-key F]
                             [--workers N] [--insecure-http]
    workstation-server issue-code WORKSTATION_ID [--ttl-hours 72] [--replace] [--database URL]   # prints the code
    workstation-server issue-token --role qa|admin --name NAME [--database URL]      # prints the token
    workstation-server tokens [--database URL]                  # qa/admin tokens and workstations, no secrets
    workstation-server revoke-token ID|NAME [--database URL]    # a qa/admin token stops working
    workstation-server revoke WORKSTATION_ID [--database URL]
    workstation-server monitor [--json] [--csv DIR] [--since D] [--until D] [--config F] [--database URL]

`serve` on an address other than loopback needs TLS (--tls-cert/--tls-key): tokens would travel in clear.
`--insecure-http` allows it anyway (behind a TLS-terminating proxy on the same host), with a warning.

The database defaults to $WORKSTATION_SERVER_DATABASE, else sqlite:///./workstation-server.sqlite;
postgresql://user@host/db uses PostgreSQL (psycopg 3). Tables are created on first use.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import os
import re
import sys

log = logging.getLogger("workstation.server")

EXIT_USAGE = 2
SERVER_EXTRA_MODULES = {"sqlalchemy", "fastapi", "uvicorn", "psycopg", "starlette", "pydantic", "msgspec"}
INSTALL_HINT = "pip install 'workstation[server]'"

try:  # the console script is installed with the client too: without the extra, say so instead of a traceback
    from . import auth, db
except ModuleNotFoundError as _exc:
    if (_exc.name or "").partition(".")[0] not in SERVER_EXTRA_MODULES:
        raise
    auth = db = None  # type: ignore[assignment]
    _MISSING: str | None = _exc.name
else:
    _MISSING = None


def _missing_extra(module: str) -> int:
    print(f"workstation-server: the server's dependencies are not installed (no module named {module!r}).\n"
          f"Install the 'server' extra: {INSTALL_HINT}", file=sys.stderr)
    return EXIT_USAGE


def _workstation_id(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", value):
        raise argparse.ArgumentTypeError("letters, digits, '.', '_' and '-' only (1-128 characters)")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workstation-server", description="Central server of the workstations' "
                                     "audit and feedback entries (sync protocol v1).")
    commands = parser.add_subparsers(dest="command", required=True)
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument("--database", default=os.environ.get("WORKSTATION_SERVER_DATABASE", db.DEFAULT_DATABASE),
                          help="sqlite:///FILE or postgresql://USER@HOST:PORT/DB (default %(default)s)")

    serve = commands.add_parser("serve", parents=[database], help="run the HTTP(S) API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument("--tls-cert", help="PEM certificate (chain) of the server; needs --tls-key")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    serve.add_argument("--workers", type=int, default=1, help="API worker processes (default 1; the flood limits are "
                       "kept per process)")
    serve.add_argument("--insecure-http", action="store_true",
                       help="serve plain HTTP on a non-loopback address (tokens in clear: only behind a local TLS proxy)")

    code = commands.add_parser("issue-code", parents=[database], help="print a one-time enrolment code")
    code.add_argument("workstation_id", type=_workstation_id)
    code.add_argument("--ttl-hours", type=float, default=auth.DEFAULT_CODE_TTL_HOURS)
    code.add_argument("--replace", action="store_true", help="the id already has entries and moves to the machine "
                      "that uses this code (its previous token stops working; recorded as an incident)")

    token = commands.add_parser("issue-token", parents=[database], help="print a qa or admin token")
    token.add_argument("--role", choices=auth.ROLES, required=True)
    token.add_argument("--name", required=True, help="who holds it (shown in the server log)")

    revoke = commands.add_parser("revoke", parents=[database], help="stop a workstation's token and unused codes")
    revoke.add_argument("workstation_id", type=_workstation_id)

    commands.add_parser("tokens", parents=[database], help="list qa/admin tokens and enrolled workstations (no secrets)")
    revoke_token = commands.add_parser("revoke-token", parents=[database], help="stop a qa or admin token")
    revoke_token.add_argument("token", help="its id or its name (as `tokens` lists them)")
    from .monitoring.cli import add_parser as add_monitor  # issue 16: `monitor`
    add_monitor(commands, database)
    return parser


def loopback(host: str) -> bool:
    """Whether `host` (as given to --host) is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def main(argv: list[str] | None = None) -> int:
    if _MISSING is not None:
        return _missing_extra(_MISSING)
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging()
    if args.command == "serve" and bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together (give both for HTTPS, neither for HTTP)")
    try:
        db.engine_url(args.database)
    except Exception as exc:  # noqa: BLE001 - a bad URL is the operator's to fix
        parser.error(f"--database: {exc}")
    if args.command == "issue-code" and not args.ttl_hours > 0:
        parser.error("--ttl-hours must be positive")
    if args.command == "serve" and not 1 <= args.workers <= 64:
        parser.error("--workers must be from 1 to 64")
    if args.command == "serve" and not args.tls_cert and not loopback(args.host):
        if not args.insecure_http:
            parser.error(f"--host {args.host} without TLS would send every token in clear over the network: give "
                         "--tls-cert and --tls-key, bind 127.0.0.1, or (behind a TLS proxy on this host only) "
                         "--insecure-http")
        log.warning("*** INSECURE: serving plain HTTP on %s (--insecure-http): bearer tokens and audit entries "
                    "cross the network in clear unless a TLS proxy on this host is the only client ***", args.host)
    if args.command == "serve":
        return _serve(args)
    if args.command == "monitor":
        from .monitoring.cli import run as monitor

        return monitor(args)
    from . import recovery  # its tables are created with the others

    engine = db.make_engine(args.database)
    try:
        db.create_schema(engine)
        with db.write(engine) as conn:
            if args.command == "issue-code":
                code, expires = auth.issue_code(conn, args.workstation_id, args.ttl_hours)
                if args.replace:
                    recovery.replace_code(conn, code, args.workstation_id)
                print(code)
                print(f"enrolment code for {args.workstation_id}{' (--replace: takes the id over)' if args.replace else ''},"
                      f" valid once until {expires}", file=sys.stderr)
            elif args.command == "issue-token":
                print(auth.issue_token(conn, args.role, args.name))
            elif args.command == "tokens":
                _print_tokens(auth.list_tokens(conn))
            elif args.command == "revoke-token":
                try:
                    row = auth.revoke_token(conn, args.token)
                except auth.TokenError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 1
                print(f"{row['role']} token {row['id']} ({row['name']}) revoked", file=sys.stderr)
            elif args.command == "revoke":
                if not auth.revoke(conn, args.workstation_id):
                    print(f"error: unknown workstation {args.workstation_id}", file=sys.stderr)
                    return 1
                print(f"workstation {args.workstation_id} revoked", file=sys.stderr)
    finally:
        engine.dispose()
    return 0


def _print_tokens(tokens: list[dict]) -> None:
    header = ("id", "name", "role", "created", "last used", "revoked")
    rows = [tuple("-" if t[k] is None else str(t[k]) for k in ("id", "name", "role", "created_utc", "last_used_utc",
                                                                "revoked_utc")) for t in tokens]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())


def _configure_logging() -> None:
    """Each line names its process: with `--workers N`, which worker said it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")


def app_from_environment():
    """The app of one worker process (`--workers N`: uvicorn imports this in each)."""
    from .app import create_app

    _configure_logging()  # a spawned worker starts without the parent's logging (its pushes went unlogged)
    _tune_collector()
    return create_app(os.environ["WORKSTATION_SERVER_DATABASE"])


def _tune_collector() -> None:
    """A push of 500 items allocates ~10^5 short-lived objects without cycles; at the default threshold (700) the
    collector ran ~140 times a push and found nothing (a few percent of the server's CPU per entry)."""
    gc.set_threshold(50_000)


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in SERVER_EXTRA_MODULES:
            raise
        return _missing_extra(exc.name)

    from .app import create_app

    app = create_app(args.database)  # creates or migrates the schema once, before any worker starts
    scheme = "https" if args.tls_cert else "http"
    log.info("serving %s://%s:%d%s on %s, %d worker process(es)", scheme, args.host, args.port, "/api/v1",
             db.dialect(app.state.engine), args.workers)
    path = db.sqlite_path(args.database)
    warning = db.loose_mode(path) if path else None
    if warning:
        log.warning("%s", warning)
    options = dict(host=args.host, port=args.port, ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key,
                   log_config=None, timeout_graceful_shutdown=5, server_header=False)
    if args.workers == 1:
        _tune_collector()
        uvicorn.run(app, **options)
    else:
        import shutil
        import tempfile

        from . import peers

        app.state.engine.dispose()
        os.environ["WORKSTATION_SERVER_DATABASE"] = args.database
        os.environ[peers.ENV] = tempfile.mkdtemp(prefix="workstation-server-peers-")  # 0700; the workers' sockets
        try:
            uvicorn.run("workstation.server.cli:app_from_environment", factory=True, workers=args.workers, **options)
        finally:
            shutil.rmtree(os.environ.pop(peers.ENV), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
