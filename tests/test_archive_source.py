"""``pk.ArchiveSource``: a tar or zip archive (local, or downloaded over http from a server the
test starts on 127.0.0.1) unpacked into the source artifact. Hostile archives, built here, are
each refused with one line naming the member, and nothing is written outside the artifact."""

from __future__ import annotations

import hashlib
import http.server
import io
import stat
import tarfile
import threading
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import pipelinekit as pk
from pipelinekit.providers._sources import content_hash
from pipelinekit.testing import FakeExecutor

SDIST = {
    "tiny-1.0/pyproject.toml": b'[project]\nname = "tiny"\nversion = "1.0"\n',
    "tiny-1.0/tiny/__init__.py": b"VERSION = '1.0'\n",
    "tiny-1.0/PKG-INFO": b"Metadata-Version: 2.1\nName: tiny\nVersion: 1.0\n",
}


def tar_gz(path: Path, files: dict[str, bytes], *, extra: list[tarfile.TarInfo] = ()) -> Path:
    """A .tar.gz of ``files`` (and ``extra`` members, which carry no data)."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            archive.addfile(info, io.BytesIO(data))
        for info in extra:
            archive.addfile(info)
    return path


def zip_file(path: Path, files: dict[str, bytes], *, links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def tar_of(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    """A .tar.gz of ``members``, in this order (names may repeat, as a hostile one's do)."""
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def member(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def folder(name: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info, b""


def linked(name: str, target: str, *, hard: bool = False) -> tuple[tarfile.TarInfo, bytes]:
    return link(name, target, hard=hard), b""


def zip_of(path: Path, *members: tuple[str, bytes]) -> Path:
    """A zip of ``members``, in this order (names may repeat)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a duplicate name: that is the point
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members:
                archive.writestr(name, data)
    return path


def link(name: str, target: str, *, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def pipeline(source: pk.ArchiveSource) -> pk.Pipeline:
    return pk.Pipeline(
        "release",
        [pk.Stage("Source", [pk.Action("Fetch", source, outputs=["src"], namespace="Src")])],
    )


def run(source: pk.ArchiveSource, workdir: Path) -> pk.RunResult:
    return pk.run(pipeline(source), workdir=workdir)


def refusal(result: pk.RunResult) -> str:
    action = result.actions["Source.Fetch"]
    assert action.status is pk.Status.FAILED
    assert action.error is not None
    assert "\n" not in action.error
    return action.error


def files_named(root: Path, word: str) -> list[Path]:
    return [path for path in root.rglob("*") if word in path.name]


# -- what works -------------------------------------------------------------------------------


def test_an_sdist_is_unpacked_without_its_top_folder(tmp_path, workdir):
    archive = tar_gz(tmp_path / "tiny-1.0.tar.gz", SDIST)
    result = run(pk.ArchiveSource(archive, strip_components=1), workdir)
    assert result.status is pk.Status.SUCCEEDED, result.actions["Source.Fetch"].error
    src = result.actions["Source.Fetch"].outputs["src"]
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()) == [
        "PKG-INFO",
        "pyproject.toml",
        "tiny/__init__.py",
    ]
    variables = result.actions["Source.Fetch"].variables
    assert variables["ArchiveHash"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert variables["ArchiveName"] == "tiny-1.0.tar.gz"
    assert variables["ContentHash"] == content_hash(src)


def test_a_zip_is_unpacked_with_its_links_kept_inside(tmp_path, workdir):
    archive = zip_file(
        tmp_path / "app.zip",
        {"app/run.py": b"print(1)\n", "app/data/x.txt": b"x"},
        links={"app/latest": "data/x.txt"},
    )
    result = run(pk.ArchiveSource(str(archive), strip_components=1), workdir)
    assert result.status is pk.Status.SUCCEEDED, result.actions["Source.Fetch"].error
    src = result.actions["Source.Fetch"].outputs["src"]
    assert (src / "run.py").read_bytes() == b"print(1)\n"
    assert (src / "latest").is_symlink()
    assert (src / "latest").read_text() == "x"


def test_the_expected_sha256_is_checked_before_unpacking(tmp_path, workdir):
    archive = tar_gz(tmp_path / "tiny-1.0.tar.gz", SDIST)
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert run(pk.ArchiveSource(archive, sha256=good.upper()), workdir).status is (
        pk.Status.SUCCEEDED
    )
    error = refusal(run(pk.ArchiveSource(archive, sha256="0" * 64), workdir / "again"))
    assert error == (
        f"archive {str(archive)!r} has SHA-256 {good}, not the expected {'0' * 64} given as "
        "sha256=; nothing was unpacked"
    )


def test_the_expected_sha256_may_be_a_variable(tmp_path, workdir):
    archive = tar_gz(tmp_path / "tiny-1.0.tar.gz", SDIST)
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    source = pk.ArchiveSource(archive, sha256="#{variables.sum}")
    declared = pk.Pipeline(
        "release",
        [pk.Stage("Source", [pk.Action("Fetch", source, outputs=["src"])])],
        variables=[pk.Variable("sum")],
    )
    result = pk.run(declared, workdir=workdir, variables={"sum": good})
    assert result.status is pk.Status.SUCCEEDED
    wrong = refusal(pk.run(declared, workdir=workdir, variables={"sum": "nonsense"}))
    assert "not the expected nonsense given as sha256=" in wrong


def test_its_output_variables_are_declared_so_the_fake_and_references_know_them():
    fake = FakeExecutor()
    source = pk.ArchiveSource("dist/tiny-1.0.tar.gz")
    shown: list[str] = []
    result = fake.run(
        pk.Pipeline(
            "release",
            [
                pk.Stage("Source", [pk.Action("Fetch", source, outputs=["src"], namespace="Src")]),
                pk.Stage(
                    "Build",
                    [
                        pk.Action(
                            "Show",
                            pk.python(lambda ctx: shown.append(ctx.configuration["hash"])),
                            inputs=["src"],
                            configuration={"hash": "#{Src.ArchiveHash}"},
                        )
                    ],
                ),
            ],
        )
    )
    assert result.status is pk.Status.SUCCEEDED
    assert result.actions["Source.Fetch"].variables == {
        "ArchiveHash": "fake-ArchiveHash",
        "ArchiveName": "fake-ArchiveName",
        "ContentHash": "fake-ContentHash",
    }


# -- hostile archives ---------------------------------------------------------------------------

HOSTILE = {
    "traversal": (
        lambda d: tar_gz(d / "a.tar.gz", {"ok.txt": b"ok", "../evil.txt": b"evil"}),
        "member '../evil.txt' climbs out of the folder with '..'",
    ),
    "traversal-deep": (
        lambda d: tar_gz(d / "a.tar.gz", {"pkg/../../../evil.txt": b"evil"}),
        "member 'pkg/../../../evil.txt' climbs out of the folder with '..'",
    ),
    "absolute": (
        lambda d: tar_gz(d / "a.tar.gz", {str(d / "evil.txt"): b"evil"}),
        "has an absolute path",
    ),
    "symlink-escape": (
        lambda d: tar_gz(
            d / "a.tar.gz", {"escape/evil.txt": b"evil"}, extra=[link("escape", "../../..")]
        ),
        "member 'escape' is a link pointing out of the folder",
    ),
    "symlink-absolute": (
        lambda d: tar_gz(d / "a.tar.gz", {}, extra=[link("escape", str(d))]),
        "member 'escape' is a link to an absolute path",
    ),
    "hardlink-escape": (
        lambda d: tar_gz(d / "a.tar.gz", {}, extra=[link("evil", "../../outside", hard=True)]),
        "member 'evil' climbs out of the folder with '..'",
    ),
    "hardlink-absolute": (
        lambda d: tar_gz(d / "a.tar.gz", {}, extra=[link("evil", "/etc/passwd", hard=True)]),
        "member 'evil' has an absolute path",
    ),
    "device": (
        lambda d: tar_gz(d / "a.tar.gz", {}, extra=[device("dev/evil")]),
        "member 'dev/evil' is a device file or a pipe",
    ),
    "zip-slip": (
        lambda d: zip_file(d / "a.zip", {"ok.txt": b"ok", "../../evil.txt": b"evil"}),
        "member '../../evil.txt' climbs out of the folder with '..'",
    ),
    "zip-absolute": (
        lambda d: zip_file(d / "a.zip", {"/evil.txt": b"evil"}),
        "member '/evil.txt' has an absolute path",
    ),
    "zip-symlink-escape": (
        lambda d: zip_file(d / "a.zip", {}, links={"escape": "../../../evil"}),
        "member 'escape' is a link pointing out of the folder",
    ),
    # Malformed: each was a raw Python error, some after writing part of the tree.
    "hardlink-missing": (
        lambda d: tar_of(d / "a.tar.gz", member("ok.txt"), linked("h", "nothere", hard=True)),
        "member 'h' is a hard link to 'nothere', which is no file before it in the archive",
    ),
    "hardlink-self": (
        lambda d: tar_of(d / "a.tar.gz", linked("h", "h", hard=True)),
        "member 'h' is a hard link to 'h', which is no file before it in the archive",
    ),
    "file-then-folder": (
        lambda d: tar_of(d / "a.tar.gz", member("f"), folder("f"), member("f/g")),
        "member 'f' is both a file and a folder in the archive",
    ),
    "folder-then-file": (
        lambda d: tar_of(d / "a.tar.gz", folder("d"), member("d/x"), member("d")),
        "member 'd' is both a folder and a file in the archive",
    ),
    "file-then-member-inside": (
        lambda d: zip_of(d / "a.zip", ("f", b"file"), ("f/g", b"g")),
        "member 'f/g' is inside 'f', which is a file of the archive",
    ),
    "duplicate-zip": (
        lambda d: zip_of(d / "a.zip", ("a.txt", b"one"), ("a.txt", b"two")),
        "member 'a.txt' appears twice in the archive",
    ),
    "duplicate-tar": (
        lambda d: tar_of(d / "a.tar.gz", member("a.txt", b"one"), member("a.txt", b"two")),
        "member 'a.txt' appears twice in the archive",
    ),
    "link-then-file": (  # a file over a link would be written through it, into its target
        lambda d: tar_of(
            d / "a.tar.gz", linked("l", "target"), member("target"), member("l", b"evil")
        ),
        "member 'l' is both a link and a file in the archive",
    ),
    "through-a-link": (  # a/b -> .. is inside; a/b/c would be written through it
        lambda d: tar_of(
            d / "a.tar.gz",
            folder("a"),
            linked("a/b", ".."),
            linked("a/b/c", ".."),
            member("a/b/c/evil.txt"),
        ),
        "member 'a/b/c' is inside 'a/b', which is a link: nothing is written through a link",
    ),
}


def device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_archive_is_refused_in_one_line_and_nothing_lands_outside(
    tmp_path, workdir, kind
):
    make, reason = HOSTILE[kind]
    archives = tmp_path / "archives"
    archives.mkdir()
    archive = make(archives)
    result = run(pk.ArchiveSource(archive), workdir)
    error = refusal(result)
    assert error.startswith(f"archive {str(archive)!r} refused: member ")
    assert reason in error
    assert error.endswith(
        "; nothing was unpacked (an archive from elsewhere must stay inside its folder and "
        "within max_bytes and max_members)"
    )
    assert files_named(tmp_path, "evil") == []
    assert not (tmp_path / "outside").exists()
    assert result.workdir is not None
    assert list((result.workdir / "artifacts" / "src").iterdir()) == []  # before any write


def test_a_member_damaged_after_others_were_written_leaves_the_artifact_empty(tmp_path, workdir):
    """Only what unpacking finds (a zip member's CRC) fails after writes: none stay."""
    archive = zip_file(tmp_path / "a.zip", {"ok.txt": b"ok", "sub/fine.txt": b"fine"})
    with zipfile.ZipFile(archive, "a") as adding:
        adding.writestr("zz.txt", b"A" * 100)
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as read:
        info = read.getinfo("zz.txt")
    start = info.header_offset + 30 + len(info.filename)
    data[start : start + 10] = b"B" * 10  # its bytes, not its header: a CRC failure
    archive.write_bytes(bytes(data))
    result = run(pk.ArchiveSource(archive), workdir)
    assert "refused: member 'zz.txt' is damaged (Bad CRC-32 for file 'zz.txt')" in refusal(result)
    assert result.workdir is not None
    assert list((result.workdir / "artifacts" / "src").iterdir()) == []
    assert list((result.workdir / "work").rglob(".pk-unpack*")) == []


def test_an_unpacking_stopped_midway_removes_what_it_wrote(tmp_path):
    """Cancelled (or failed) between members: the staging folder goes, the target stays empty."""
    from pipelinekit.providers._unpack import Limits, unpack  # noqa: PLC0415

    archive = tar_gz(tmp_path / "a.tar.gz", {f"f{i}.txt": b"x" for i in range(5)})
    target, work = tmp_path / "target", tmp_path / "work"
    target.mkdir()
    work.mkdir()

    class StoppedError(Exception):
        pass

    def checkpoint() -> None:
        if len(list(work.rglob("f*.txt"))) == 2:  # some were written, in staging
            raise StoppedError

    with pytest.raises(StoppedError):
        unpack(archive, target, 0, Limits(1 << 20, 100), staging=work, checkpoint=checkpoint)
    assert list(target.iterdir()) == []
    assert list(work.iterdir()) == []
    unpack(archive, target, 0, Limits(1 << 20, 100), staging=work)
    assert sorted(path.name for path in target.iterdir()) == [f"f{i}.txt" for i in range(5)]
    assert list(work.iterdir()) == []


def test_a_size_bomb_is_refused_past_max_bytes(tmp_path, workdir):
    archive = tar_gz(tmp_path / "bomb.tar.gz", {"a.bin": b"\0" * 600, "b.bin": b"\0" * 600})
    assert archive.stat().st_size < 1000  # small compressed, big unpacked
    error = refusal(run(pk.ArchiveSource(archive, max_bytes=1000), workdir))
    assert "member 'b.bin' takes the uncompressed size past max_bytes=1000" in error


def test_a_zip_whose_header_understates_its_size_is_stopped_as_it_unpacks(tmp_path, workdir):
    archive = zip_file(tmp_path / "bomb.zip", {"zero.bin": b"\0" * 5000})
    # A lying header: it claims 10 bytes for 5,000.
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as read:
        info = read.getinfo("zero.bin")
    for offset in (info.header_offset + 22, data.rfind(b"PK\x01\x02") + 24):
        data[offset : offset + 4] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    error = refusal(run(pk.ArchiveSource(archive, max_bytes=1000), workdir))
    # The standard library reads no more than the header says, then finds the CRC wrong.
    assert "refused: member 'zero.bin' is damaged (Bad CRC-32 for file 'zero.bin')" in error


def test_too_many_members_are_refused(tmp_path, workdir):
    archive = tar_gz(tmp_path / "many.tar.gz", {f"f{i}": b"" for i in range(5)})
    error = refusal(run(pk.ArchiveSource(archive, max_members=3), workdir))
    assert "member 'f3' is one member more than max_members=3 allows" in error


def test_a_file_that_is_no_archive_is_one_line(tmp_path, workdir):
    archive = tmp_path / "fake.tar.gz"
    archive.write_bytes(b"not an archive")
    error = refusal(run(pk.ArchiveSource(archive), workdir))
    assert error.startswith(f"archive {str(archive)!r} refused: is not a tar or zip archive")


# -- downloads from a server on 127.0.0.1 ------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """Quiet: a test's server prints nothing."""

    #: Set when the test ends: a stalled answer waits for it (never a sleep).
    released = threading.Event()

    def do_GET(self) -> None:
        if self.path.startswith("/long.tar.gz"):  # sends more than its Content-Length says
            data = (Path(self.directory) / "tiny-1.0.tar.gz").read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(data)
            return
        if self.path == "/stall.tar.gz":  # headers, then nothing
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.flush()
            self.released.wait()
            return
        if self.path.startswith("/moved.tar.gz"):  # to another host name, with a token
            port = self.server.server_address[1]
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{port}/tiny-1.0.tar.gz?sig=SECRETSIG")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/stream.tar.gz":  # no Content-Length: only counting stops it
            data = (Path(self.directory) / "tiny-1.0.tar.gz").read_bytes()
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, Path]]:
    served = tmp_path / "served"
    served.mkdir()

    def handler(*args: object) -> _Handler:
        return _Handler(*args, directory=str(served))  # type: ignore[arg-type]

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.released.clear()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        _Handler.released.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_an_archive_is_downloaded_over_http(server, workdir):
    url, served = server
    archive = tar_gz(served / "tiny-1.0.tar.gz", SDIST)
    result = run(pk.ArchiveSource(f"{url}/tiny-1.0.tar.gz?x=1", strip_components=1), workdir)
    assert result.status is pk.Status.SUCCEEDED, result.actions["Source.Fetch"].error
    variables = result.actions["Source.Fetch"].variables
    assert variables["ArchiveHash"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert variables["ArchiveName"] == "tiny-1.0.tar.gz"
    assert (result.actions["Source.Fetch"].outputs["src"] / "PKG-INFO").is_file()


def test_a_download_is_hashed_off_the_event_loop(server, workdir, monkeypatch):
    """Each 1 MB block is hashed in the worker thread that writes it, never on the loop."""
    from pipelinekit.providers import _sources  # noqa: PLC0415

    url, served = server
    tar_gz(served / "big.tar.gz", {"big/blob": bytes(range(256)) * 12000})
    threads: set[int] = set()
    write = _sources._hash_and_write

    def noting(digest, handle, block):
        threads.add(threading.get_ident())
        write(digest, handle, block)

    monkeypatch.setattr(_sources, "_hash_and_write", noting)
    result = run(pk.ArchiveSource(f"{url}/big.tar.gz", strip_components=1), workdir)
    assert result.status is pk.Status.SUCCEEDED, result.actions["Source.Fetch"].error
    assert threads
    assert threading.get_ident() not in threads  # pk.run's loop runs in this thread


def test_a_download_larger_than_max_bytes_is_refused(server, workdir):
    url, served = server
    archive = tar_gz(served / "tiny-1.0.tar.gz", SDIST)
    size = archive.stat().st_size
    error = refusal(run(pk.ArchiveSource(f"{url}/tiny-1.0.tar.gz", max_bytes=size - 1), workdir))
    assert error == (
        f"archive '{url}/tiny-1.0.tar.gz' is {size} bytes, more than max_bytes={size - 1}; "
        "nothing was downloaded"
    )
    error = refusal(
        run(pk.ArchiveSource(f"{url}/stream.tar.gz", max_bytes=size - 1), workdir / "again")
    )
    assert error == (
        f"archive '{url}/stream.tar.gz' is more than max_bytes={size - 1} bytes; the download "
        "was stopped"
    )


def test_a_missing_download_names_the_status_and_hides_the_password(server, workdir):
    url, _ = server
    secret_url = url.replace("http://", "http://user:hunter2@") + "/gone.tar.gz"
    error = refusal(run(pk.ArchiveSource(secret_url), workdir))
    assert error == f"downloading '{url}/gone.tar.gz' answered HTTP 404"
    assert "hunter2" not in error


def test_a_query_string_is_never_shown(server, workdir):
    """A token in the query (a signed URL) is not in the error, the log or the events."""
    url, served = server
    store = pk.MemoryStore()
    gone = refusal(
        pk.run(
            pipeline(pk.ArchiveSource(f"{url}/gone.tar.gz?token=SECRETQ#frag")),
            workdir=workdir,
            store=store,
        )
    )
    assert gone == f"downloading '{url}/gone.tar.gz' answered HTTP 404"
    tar_gz(served / "tiny-1.0.tar.gz", SDIST)
    result = pk.run(
        pipeline(pk.ArchiveSource(f"{url}/tiny-1.0.tar.gz?token=SECRETQ")),
        workdir=workdir / "again",
        store=store,
    )
    assert result.status is pk.Status.SUCCEEDED
    log = Path(result.actions["Source.Fetch"].log_path or "").read_text()
    assert f"url='{url}/tiny-1.0.tar.gz'" in log
    shown = log + repr(anyio.run(store.events, result.execution_id))
    assert "SECRETQ" not in shown
    assert "frag" not in shown


def test_a_download_larger_than_its_content_length_is_refused_in_one_line(server, workdir):
    """The client reads what Content-Length says (10 bytes): a cut archive, refused."""
    url, served = server
    tar_gz(served / "tiny-1.0.tar.gz", SDIST)
    error = refusal(run(pk.ArchiveSource(f"{url}/long.tar.gz?token=SECRETQ"), workdir))
    assert error.startswith(
        f"archive '{url}/long.tar.gz' refused: is cut short or damaged before its first member ("
    )


def test_a_download_that_stalls_fails_after_idle_timeout(server, workdir):
    url, _ = server
    error = refusal(run(pk.ArchiveSource(f"{url}/stall.tar.gz", idle_timeout=0.2), workdir))
    assert error == (
        f"downloading '{url}/stall.tar.gz' stalled: nothing came for 0.2 s (idle_timeout=); "
        "the server may be down or overloaded, or raise idle_timeout"
    )


def test_a_redirect_is_followed_and_its_final_url_logged_without_query(server, workdir):
    url, served = server
    tar_gz(served / "tiny-1.0.tar.gz", SDIST)
    result = run(pk.ArchiveSource(f"{url}/moved.tar.gz?token=SECRETQ"), workdir)
    assert result.status is pk.Status.SUCCEEDED, result.actions["Source.Fetch"].error
    log = Path(result.actions["Source.Fetch"].log_path or "").read_text()
    final = url.replace("127.0.0.1", "localhost") + "/tiny-1.0.tar.gz"
    assert f"redirected url='{final}'" in log
    assert "SECRET" not in log


# -- the declaration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"location": "ftp://host/a.tar.gz"}, "location", "only http:// and https:// URLs"),
        ({"location": "notes.txt"}, "location", "must name an archive (.tar.gz, .tgz"),
        ({"location": ""}, "location", "must be the path or http(s) URL of an archive"),
        ({"location": "a.zip", "strip_components": -1}, "strip_components", "at least 0"),
        ({"location": "a.zip", "max_bytes": 0}, "max_bytes", "at least 1"),
        ({"location": "a.zip", "sha256": "abc"}, "sha256", "must be 64 hex digits"),
        ({"location": "a.zip", "idle_timeout": 0}, "idle_timeout", "a number of seconds above 0"),
    ],
)
def test_a_bad_declaration_is_refused_naming_the_field(options, field, message):
    location = options.pop("location")
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        pk.Action("Fetch", pk.ArchiveSource(location, **options), outputs=["src"])
    assert f"field 'provider.{field}'" in str(caught.value)
    assert message in str(caught.value)


def test_the_default_registry_builds_an_archive_source_from_its_configuration(tmp_path):
    from pipelinekit.providers._protocol import ProviderRegistry  # noqa: PLC0415

    registry = ProviderRegistry.default()
    built = registry.build(pk.ArchiveSource.action_type, {"location": str(tmp_path / "a.zip")})
    assert built == pk.ArchiveSource(str(tmp_path / "a.zip"))
