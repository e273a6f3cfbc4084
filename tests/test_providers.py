"""The built-in providers, run for real: commands as process groups, sources, HTTP, waits, and
the provider registry."""

from __future__ import annotations

import http.server
import os
import stat
import subprocess
import threading
import time
from importlib import metadata
from pathlib import Path

import anyio
import attrs
import pytest

import pipelinekit as pk

pytestmark = pytest.mark.anyio


def one(action, **options):
    return pk.Pipeline("p", [pk.Stage("S", [action])], **options)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


# -- commands ------------------------------------------------------------------------------------


async def test_commands_stream_output_into_the_log_and_export_variables(workdir):
    action = pk.Action(
        "Build",
        pk.shell(
            "echo building",
            "echo warning >&2",
            'VERSION="1.$((1 + 1))"',
            output_variables=["VERSION"],
            optional_output_variables=["UNSET"],
        ),
        namespace="B",
    )
    result = await pk.arun(one(action), workdir=workdir)
    build = result.actions["S.Build"]
    assert build.status is pk.Status.SUCCEEDED, build.error
    assert build.variables == {"VERSION": "1.2", "UNSET": ""}
    log = build.log_path.read_text()
    assert "building\n" in log
    assert "warning\n" in log
    assert result.variables["B.VERSION"] == "1.2"


async def test_a_failing_command_reports_which_command_its_status_and_last_lines(workdir):
    action = pk.Action("A", pk.shell("echo fine", "echo 'it broke' >&2; exit 7", "echo never"))
    result = await pk.arun(one(action), workdir=workdir)
    error = result.actions["S.A"].error
    assert error == (
        "command exited with status 7 in commands[1] (2 of 3): echo 'it broke' >&2; exit 7:\n"
        "fine\nit broke"
    )
    assert "never" not in result.actions["S.A"].log_path.read_text().splitlines()


async def test_env_values_are_never_parsed_by_a_shell(workdir, tmp_path):
    marker = tmp_path / "pwned"
    hostile = f"$(touch {marker}); `touch {marker}`"
    action = pk.Action(
        "A",
        pk.shell(
            'printf "%s" "$VALUE" > value.txt',
            'cp value.txt "$PK_OUTPUT_out/"',
            env={"VALUE": "#{variables.v}"},
        ),
        outputs=["out"],
    )
    pipeline = one(action, variables=[pk.Variable("v", default="x")])
    result = await pk.arun(pipeline, workdir=workdir, variables={"v": hostile})
    assert result.succeeded, result.actions["S.A"].error
    assert not marker.exists()
    assert (result.actions["S.A"].outputs["out"] / "value.txt").read_text() == hostile


async def test_outputs_are_fresh_and_inputs_are_the_producers_read_only_outputs(workdir):
    produce = pk.Action("Make", pk.shell('echo data > "$PK_OUTPUT_art/file.txt"'), outputs=["art"])
    consume = pk.Action(
        "Use", pk.shell('test "$(cat "$PK_INPUT_art/file.txt")" = data'), inputs=["art"]
    )
    pipeline = pk.Pipeline("p", [pk.Stage("A", [produce]), pk.Stage("B", [consume])])
    result = await pk.arun(pipeline, workdir=workdir)
    assert result.succeeded, result.actions["B.Use"].error
    path = result.actions["A.Make"].outputs["art"]
    assert path == workdir.absolute() / "executions" / result.execution_id / "artifacts" / "art"
    mode = (path / "file.txt").stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


async def test_a_timeout_ends_the_whole_process_tree(workdir, tmp_path):
    pids = tmp_path / "pids"
    # A child that ignores SIGTERM and a grandchild: both must be gone after the timeout.
    command = (
        f"sh -c 'trap \"\" TERM; sleep 300' & echo $! >> {pids}; "
        f"sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    )
    action = pk.Action(
        "Stuck",
        pk.Commands([command], grace_period=0.2),
        timeout=0.5,
    )
    started = time.monotonic()
    result = await pk.arun(one(action), workdir=workdir)
    elapsed = time.monotonic() - started
    assert result.actions["S.Stuck"].error == "timed out after 0.5s"
    recorded = [int(line) for line in pids.read_text().split()]
    assert len(recorded) == 3
    for _ in range(50):
        if not any(alive(pid) for pid in recorded):
            break
        await anyio.sleep(0.05)
    assert not any(alive(pid) for pid in recorded), [p for p in recorded if alive(p)]
    assert elapsed < 10


async def test_background_processes_left_by_a_successful_command_are_ended(workdir, tmp_path):
    pidfile = tmp_path / "pid"
    action = pk.Action("A", pk.Commands([f"sleep 300 & echo $! > {pidfile}"], grace_period=0.2))
    result = await pk.arun(one(action), workdir=workdir)
    assert result.succeeded
    assert not alive(int(pidfile.read_text()))


async def test_cancelling_a_run_ends_its_commands(workdir, tmp_path):
    pidfile = tmp_path / "pid"
    action = pk.Action("A", pk.Commands([f"echo $$ > {pidfile}; exec sleep 300"], grace_period=0.2))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(pk.arun, one(action))
        with anyio.fail_after(10):
            while not pidfile.exists() or not pidfile.read_text().strip():
                await anyio.sleep(0.02)
        tasks.cancel_scope.cancel()
    assert not alive(int(pidfile.read_text()))


async def test_four_one_second_actions_in_one_group_take_about_one_second(workdir):
    actions = [pk.Action(f"A{i}", pk.shell("sleep 1")) for i in range(4)]
    started = time.monotonic()
    result = await pk.arun(pk.Pipeline("p", [pk.Stage("S", actions)]), workdir=workdir)
    elapsed = time.monotonic() - started
    assert result.succeeded
    assert 1.0 <= elapsed < 3.5  # one after the other would take at least 4 s


async def test_run_command_refuses_a_string(workdir):
    async def body(ctx):
        await ctx.run_command("echo hi")

    result = await pk.arun(one(pk.Action("A", pk.python(body))), workdir=workdir)
    assert "takes a list of arguments" in result.actions["S.A"].error


# -- sources -------------------------------------------------------------------------------------


async def test_local_source_copies_a_directory_and_hashes_it(workdir, tmp_path):
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "a.py").write_text("print('a')\n")
    (source / "__pycache__").mkdir()
    (source / "__pycache__" / "a.pyc").write_bytes(b"\0")
    action = pk.Action("Checkout", pk.LocalSource(source), outputs=["src"], namespace="Src")
    result = await pk.arun(one(action), workdir=workdir)
    checkout = result.actions["S.Checkout"]
    assert checkout.status is pk.Status.SUCCEEDED, checkout.error
    copied = checkout.outputs["src"]
    assert (copied / "pkg" / "a.py").read_text() == "print('a')\n"
    assert not (copied / "__pycache__").exists()
    assert len(result.variables["Src.ContentHash"]) == 64
    again = await pk.arun(one(action), workdir=workdir)
    assert again.variables["Src.ContentHash"] == result.variables["Src.ContentHash"]
    (source / "pkg" / "a.py").write_text("print('b')\n")
    changed = await pk.arun(one(action), workdir=workdir)
    assert changed.variables["Src.ContentHash"] != result.variables["Src.ContentHash"]


def test_local_source_needs_one_output():
    with pytest.raises(pk.PipelineDefinitionError, match="exactly 1 output artifact"):
        one(pk.Action("Checkout", pk.LocalSource(".")))


def git(repo, *args):
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch=main")
    (path / "README").write_text("one\n")
    git(path, "add", "README")
    git(path, "commit", "--quiet", "-m", "First commit")
    (path / "README").write_text("two\n")
    git(path, "commit", "--quiet", "-am", "Second commit\n\nWith a body.")
    return path


async def test_git_source_clones_a_branch_with_codepipelines_variables(workdir, repo):
    action = pk.Action(
        "Checkout", pk.GitSource(str(repo), branch="main"), outputs=["src"], namespace="Git"
    )
    result = await pk.arun(one(action), workdir=workdir)
    checkout = result.actions["S.Checkout"]
    assert checkout.status is pk.Status.SUCCEEDED, checkout.error
    assert (checkout.outputs["src"] / "README").read_text() == "two\n"
    assert not (checkout.outputs["src"] / ".git").exists()
    assert checkout.variables["CommitId"] == git(repo, "rev-parse", "HEAD")
    assert checkout.variables["BranchName"] == "main"
    assert checkout.variables["CommitMessage"] == "Second commit\n\nWith a body."
    assert checkout.variables["RepositoryName"] == "repo"
    assert checkout.variables["AuthorDate"].startswith(str(time.gmtime().tm_year))


async def test_git_source_checks_out_a_commit_from_a_file_url(workdir, repo):
    first = git(repo, "rev-list", "--max-parents=0", "HEAD")
    action = pk.Action(
        "Checkout", pk.GitSource(f"file://{repo}", commit=first, keep_git=True), outputs=["src"]
    )
    result = await pk.arun(one(action), workdir=workdir)
    checkout = result.actions["S.Checkout"]
    assert checkout.status is pk.Status.SUCCEEDED, checkout.error
    assert (checkout.outputs["src"] / "README").read_text() == "one\n"
    assert checkout.variables["CommitId"] == first
    assert (checkout.outputs["src"] / ".git").exists()


async def test_git_source_fails_clearly_for_a_missing_branch(workdir, repo):
    action = pk.Action("Checkout", pk.GitSource(str(repo), branch="nope"), outputs=["src"])
    result = await pk.arun(one(action), workdir=workdir)
    assert "command exited with status 128" in result.actions["S.Checkout"].error


def test_git_source_refuses_option_like_values():
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        one(
            pk.Action(
                "C", pk.GitSource("--upload-pack=evil", branch="-x", commit="zz"), outputs=["s"]
            )
        )
    fields = {p.field for p in caught.value.problems}
    assert fields == {"provider.url", "provider.branch", "provider.commit"}


# -- HTTP and waits --------------------------------------------------------------------------------


@pytest.fixture
def server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status = 500 if self.path == "/broken" else 200
            body = b'{"ok": true}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers["Content-Length"])
            body = self.rfile.read(length) + b"|" + self.headers["X-Token"].encode()
            self.send_response(201)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


async def test_http_request_sets_response_variables(workdir, server):
    action = pk.Action("Ping", pk.HttpRequest(f"{server}/health"), namespace="Ping")
    result = await pk.arun(one(action), workdir=workdir)
    ping = result.actions["S.Ping"]
    assert ping.status is pk.Status.SUCCEEDED, ping.error
    assert ping.variables == {
        "StatusCode": "200",
        "ContentType": "application/json",
        "Body": '{"ok": true}',
    }


async def test_http_request_sends_method_headers_body(workdir, server):
    provider = pk.HttpRequest(
        f"{server}/deploy",
        method="POST",
        headers={"X-Token": "#{variables.token}"},
        body="release",
        expected_status=[201],
    )
    pipeline = one(pk.Action("Call", provider), variables=[pk.Variable("token", default="t0k")])
    result = await pk.arun(pipeline, workdir=workdir)
    assert result.actions["S.Call"].variables["Body"] == "release|t0k"
    assert not provider.idempotent


async def test_http_request_fails_on_an_unexpected_status_or_no_server(workdir, server):
    result = await pk.arun(one(pk.Action("A", pk.HttpRequest(f"{server}/broken"))), workdir=workdir)
    assert result.actions["S.A"].error == f"GET {server}/broken answered 500, expected 2xx"
    closed = pk.HttpRequest("http://127.0.0.1:9/", request_timeout=2)
    result = await pk.arun(one(pk.Action("A", closed)), workdir=workdir)
    assert result.actions["S.A"].error.startswith("GET http://127.0.0.1:9/ failed: ConnectError")


async def test_wait_waits(workdir):
    result = await pk.arun(one(pk.Action("W", pk.Wait(0.01))), workdir=workdir)
    assert result.succeeded
    assert result.actions["S.W"].duration.total_seconds() >= 0.01


# -- the registry ------------------------------------------------------------------------------


@pk.provider("Custom", "Greeter", category=pk.Category.INVOKE)
@attrs.frozen
class Greeter:
    Greeting: str

    async def run(self, ctx):
        ctx.set_variable("Said", self.Greeting)


@pk.provider("Custom", "Declared", category=pk.Category.BUILD)
@attrs.frozen
class DeclaredOnly:
    """A declaration with no run(): the registry supplies the implementation."""


def test_the_default_registry_holds_the_builtins_and_plugins(monkeypatch):
    entry = metadata.EntryPoint(
        name="greeter", value=f"{__name__}:Greeter", group=pk.providers.ENTRY_POINT_GROUP
    )
    real = metadata.entry_points

    def fake(**kwargs):
        if kwargs.get("group") == pk.providers.ENTRY_POINT_GROUP:
            return metadata.EntryPoints([entry])
        return real(**kwargs)

    monkeypatch.setattr(metadata, "entry_points", fake)
    registry = pk.ProviderRegistry.default()
    assert pk.Commands.action_type in registry
    assert registry.get(Greeter.action_type) is Greeter
    built = registry.build(Greeter.action_type, {"Greeting": "hi"})
    assert built == Greeter("hi")


def test_a_broken_plugin_is_reported(monkeypatch):
    entry = metadata.EntryPoint(
        name="broken", value="no_such_module:Thing", group=pk.providers.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(metadata, "entry_points", lambda **_: metadata.EntryPoints([entry]))
    with pytest.raises(pk.ExecutionError, match="provider plugin 'broken'"):
        pk.ProviderRegistry.default()


async def test_a_declaration_without_run_is_built_from_the_registry(workdir):
    registry = pk.ProviderRegistry()
    registry.register(Greeter)

    @pk.provider("Custom", "Greeter", category=pk.Category.INVOKE)
    @attrs.frozen
    class GreeterDeclaration:
        pass

    action = pk.Action("Hi", GreeterDeclaration(), configuration={"Greeting": "hello"})
    async with pk.Engine(workdir=workdir, registry=registry) as engine:
        result = await (await engine.start(one(action))).wait()
    assert result.actions["S.Hi"].variables == {"Said": "hello"}
    async with pk.Engine(workdir=workdir, registry=registry) as engine:
        result = await (await engine.start(one(pk.Action("X", DeclaredOnly())))).wait()
    assert "no provider is registered for action type Build/Custom/Declared/1" in (
        result.actions["S.X"].error
    )


async def test_commands_that_set_none_of_their_output_variables_fail_naming_them(workdir):
    # The variables file is written only when one is set: none set was a FileNotFoundError,
    # then an empty value with a warning; now the action fails saying which and how to fix it.
    action = pk.Action("Build", pk.shell("echo nothing", output_variables=["VERSION", "COMMIT"]))
    result = await pk.arun(one(action), workdir=workdir)
    build = result.actions["S.Build"]
    assert build.status is pk.Status.FAILED
    assert build.error == (
        "the commands did not set the output variables 'VERSION', 'COMMIT': set them in a "
        "command (`VERSION=...` or `export VERSION=...`), or declare them optional "
        "(optional_output_variables=['VERSION', 'COMMIT']); or the commands replaced the "
        "EXIT trap / ran exec (pipelinekit hands the variables over from its EXIT trap)"
    )


async def test_optional_output_variables_left_unset_are_empty_with_a_warning(workdir):
    action = pk.Action(
        "Build",
        pk.shell(
            "VERSION=1.0",
            output_variables=["VERSION"],
            optional_output_variables=["NOTES"],
        ),
        namespace="B",
    )
    result = await pk.arun(one(action), workdir=workdir)
    build = result.actions["S.Build"]
    assert build.status is pk.Status.SUCCEEDED, build.error
    assert build.variables == {"VERSION": "1.0", "NOTES": ""}
    assert "optional output variable not set by the commands name='NOTES'" in (
        build.log_path.read_text()
    )


def test_a_variable_both_required_and_optional_is_refused():
    with pytest.raises(pk.PipelineDefinitionError, match="either required"):
        pk.Action("A", pk.shell("true", output_variables=["V"], optional_output_variables=["V"]))


def test_a_list_of_commands_is_refused_saying_to_pass_them_separately():
    # Today's cut: "commands[0]: must be a non-empty string", which does not say what to do.
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        pk.Action("Build", pk.shell(["make", "make test"]))
    assert str(caught.value) == (
        "action 'Build', field 'provider.commands[0]': is a list; pass commands as separate "
        "arguments: pk.shell('make', 'make test') (or pk.shell(*commands))"
    )
