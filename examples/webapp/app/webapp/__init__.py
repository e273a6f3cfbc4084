"""A small WSGI application: the thing the example pipeline builds, tests and deploys."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs

__version__ = "1.0.0"

StartResponse = Callable[[str, list[tuple[str, str]]], object]


def greeting(name: str) -> str:
    """The greeting for ``name``; a blank name greets the world."""
    cleaned = " ".join(name.split())
    return f"Hello, {cleaned or 'world'}!"


def application(environ: dict[str, object], start_response: StartResponse) -> Iterable[bytes]:
    """Serve ``/health`` and ``/greet?name=...`` as JSON."""
    path = str(environ.get("PATH_INFO", "/"))
    query = parse_qs(str(environ.get("QUERY_STRING", "")))
    if path == "/health":
        status, body = "200 OK", {"status": "ok", "version": __version__}
    elif path == "/greet":
        status, body = "200 OK", {"message": greeting(query.get("name", [""])[0])}
    else:
        status, body = "404 Not Found", {"error": f"no route for {path}"}
    payload = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    )
    return [payload]
