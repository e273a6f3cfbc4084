"""The command line: ``python webapp.pyz [--port N]``; ``--check`` serves itself once and exits."""

from __future__ import annotations

import argparse
import json
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

from webapp import __version__, application


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def main() -> int:
    """Serve the app, or with ``--check`` answer one /health request and report it."""
    parser = argparse.ArgumentParser(prog="webapp")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--check", action="store_true", help="serve /health once on a free port and exit"
    )
    args = parser.parse_args()
    if not args.check:
        with make_server("127.0.0.1", args.port, application) as server:
            print(f"webapp {__version__} on http://127.0.0.1:{args.port}")
            server.serve_forever()
        return 0
    with make_server("127.0.0.1", 0, application, handler_class=_QuietHandler) as server:
        thread = threading.Thread(target=server.handle_request)
        thread.start()
        url = f"http://127.0.0.1:{server.server_port}/health"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        thread.join()
    print(json.dumps(body))
    return 0 if body.get("status") == "ok" else 1
