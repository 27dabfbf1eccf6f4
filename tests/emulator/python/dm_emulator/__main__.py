"""``python -m dm_emulator --host 127.0.0.1 --port 0``

Serves moto (all services, dispatched the way ``moto_server`` does) with our
plugins installed and the faults middleware in front, on loopback only.
Prints ``DM_EMULATOR_READY http://HOST:PORT`` once listening.  Exits when its
stdin reaches EOF (so it dies with the process that started it), unless
``--no-stdin-watch`` is given.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

LOOPBACK_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dm_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="127.0.0.1, ::1 or localhost")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--no-stdin-watch",
        action="store_true",
        help="keep running when stdin closes (default: exit on EOF)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines on stderr")
    return parser.parse_args(argv)


def _watch_stdin() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    print("dm_emulator: stdin closed, exiting", file=sys.stderr, flush=True)
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    host = LOOPBACK_HOSTS.get(args.host)
    if host is None:
        print(
            f"dm_emulator: refusing to listen on {args.host!r}: only 127.0.0.1, ::1 or localhost",
            file=sys.stderr,
        )
        return 2
    if not 0 <= args.port <= 65535:
        print(f"dm_emulator: bad port {args.port}", file=sys.stderr)
        return 2

    if not args.no_stdin_watch:
        threading.Thread(target=_watch_stdin, name="stdin-watch", daemon=True).start()

    from werkzeug.serving import make_server

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    from .faults import FaultsMiddleware
    from .plugins import install_all

    plugins = install_all()
    # The middleware logs one line per AWS request (account, service:action,
    # status); werkzeug's own access log would only say "POST / 200".
    app = FaultsMiddleware(DomainDispatcherApplication(create_backend_app), log=not args.quiet)

    class Handler(MotoRequestHandler):
        def log_request(self, *a: object, **k: object) -> None:
            pass

    server = make_server(host, args.port, app, threaded=True, request_handler=Handler)
    port = server.server_port
    # moto builds some URLs pointing back at itself (e.g. SQS queue URLs).
    os.environ.setdefault("MOTO_PORT", str(port))
    url_host = f"[{host}]" if ":" in host else host
    print(f"dm_emulator: plugins {', '.join(plugins)}", file=sys.stderr, flush=True)
    sys.stdout.write(f"DM_EMULATOR_READY http://{url_host}:{port}\n")
    sys.stdout.flush()
    # Nothing else goes to stdout: whoever reads the READY line may stop reading.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
