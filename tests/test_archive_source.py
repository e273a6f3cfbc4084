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
import zipfile
from collections.abc import Iterator
from pathlib import Path

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

    def do_GET(self) -> None:
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
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
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
