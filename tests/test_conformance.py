"""The built-in providers pass the provider conformance kit, and the kit catches providers that
break the contract."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess

import anyio
import pytest

import pipelinekit as pk
from pipelinekit.testing import check_provider

ALL = (
    "succeeds",
    "succeeds in an engine",
    "reports failure as ActionFailed",
    "honours cancellation",
    "honours timeouts",
    "leaves no process behind",
    "masks secrets",
)


async def ok(ctx):
    await anyio.lowlevel.checkpoint()


async def refuse(ctx):
    raise pk.ActionFailed("refused")


async def forever(ctx):
    await anyio.sleep_forever()


def leaky(secret):
    async def body(ctx):
        ctx.log.info("connecting", password=secret)
        print(secret)  # noqa: T201 - leaking through stdout is the point

    return pk.python(body)


def test_commands_conform():
    report = check_provider(
        lambda: pk.shell("echo hello"),
        fail=lambda: pk.shell("exit 3"),
        hang=lambda: pk.Commands(["sleep 300 & sleep 300"], grace_period=0.5),
        leak=lambda secret: pk.shell(f"echo {secret}", f"echo {secret} >&2"),
    )
    assert report.passed == ALL


def test_python_functions_conform():
    report = check_provider(
        lambda: pk.python(ok),
        fail=lambda: pk.python(refuse),
        hang=lambda: pk.python(forever),
        leak=leaky,
    )
    assert report.passed == ALL


def test_wait_conforms():
    report = check_provider(lambda: pk.Wait(0), hang=lambda: pk.Wait(3600))
    assert "honours timeouts" in report.passed


def test_local_source_conforms(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("a")
    report = check_provider(
        lambda: pk.LocalSource(source),
        fail=lambda: pk.LocalSource(tmp_path / "missing"),
        outputs=["src"],
    )
    assert report.passed == ("succeeds", "succeeds in an engine", "reports failure as ActionFailed")


def test_git_source_conforms(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "A",
           "GIT_COMMITTER_EMAIL": "a@x", "PATH": "/usr/bin:/bin"}  # fmt: skip
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "one"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
    report = check_provider(
        lambda: pk.GitSource(str(repo), branch="main"),
        fail=lambda: pk.GitSource(str(repo), branch="nope"),
        outputs=["src"],
    )
    assert "reports failure as ActionFailed" in report.passed


def test_the_kit_catches_a_provider_that_swallows_cancellation():
    async def swallow(ctx):
        try:
            await anyio.sleep_forever()
        except BaseException:  # noqa: BLE001 - swallowing cancellation is the bug checked for
            return

    with pytest.raises(AssertionError, match="'honours cancellation': run\\(\\) returned"):
        check_provider(lambda: pk.python(ok), hang=lambda: pk.python(swallow))


def test_the_kit_catches_a_provider_that_fails_with_the_wrong_exception():
    async def crash(ctx):
        raise KeyError("x")

    with pytest.raises(AssertionError, match="raised KeyError"):
        check_provider(lambda: pk.python(ok), fail=lambda: pk.python(crash))


def test_the_kit_catches_a_process_left_behind():
    # Out of the action's process group and rid of pipelinekit's tag, a process cannot be
    # found by the run; the kit (which tags its contexts in its own way) still notices.
    escape = "env -u PK_PROCESS_TAG setsid sleep 30 & sleep 300"
    with pytest.raises(AssertionError, match="leaves no process behind") as caught:
        check_provider(
            lambda: pk.python(ok),
            hang=lambda: pk.Commands([escape], grace_period=0.2),
        )
    pids = re.search(r"pids \[([\d, ]+)\]", str(caught.value))
    assert pids is not None
    for pid in pids[1].split(", "):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def test_the_kit_catches_a_leaked_secret():
    def raw_leak(secret):
        async def body(ctx):
            ctx.log_file._append([secret])  # bypasses masking on purpose

        return pk.python(body)

    with pytest.raises(AssertionError, match="'masks secrets': the secret reached"):
        check_provider(lambda: pk.python(ok), leak=raw_leak)


def test_http_request_conforms():
    import http.server  # noqa: PLC0415 - only this test serves HTTP
    import threading  # noqa: PLC0415

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404 if self.path == "/missing" else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        report = check_provider(
            lambda: pk.HttpRequest(f"{base}/health"),
            fail=lambda: pk.HttpRequest(f"{base}/missing"),
        )
    finally:
        server.shutdown()
        server.server_close()
    assert report.passed == ("succeeds", "succeeds in an engine", "reports failure as ActionFailed")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_both_stores_keep_the_rules_of_caches_and_deletion(tmp_path, kind):
    from pipelinekit.testing import check_store  # noqa: PLC0415

    make = pk.MemoryStore if kind == "memory" else lambda: pk.SQLiteStore(tmp_path / "s.db")
    report = check_store(make)
    assert report.passed == (
        "saved caches never change",
        "prefixes find the newest first",
        "last use is kept",
        "deleting caches",
        "deleting executions",
    )


def test_the_store_kit_catches_a_store_whose_saved_caches_change():
    from pipelinekit.testing import check_store  # noqa: PLC0415

    class Overwriting(pk.MemoryStore):
        async def save_cache(self, entry):
            self._saved[entry.key, entry.paths] = entry
            return True

    with pytest.raises(AssertionError, match="saved caches never change"):
        check_store(Overwriting)
