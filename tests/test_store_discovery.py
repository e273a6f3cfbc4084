"""Every command finds its store by one rule: --store, $PIPELINEKIT_HOME, the nearest
.pipelinekit/ walking up (as git finds .git), and for ``run`` a new one here."""

from __future__ import annotations

import os
import pathlib
import textwrap

import pytest

from pipelinekit.cli._store import find_store, store_option, walk_up

PIPELINE = """
import pipelinekit as pk
pipeline = pk.Pipeline("p", [pk.Stage("S", [pk.Action("A", pk.shell("echo hi"))])])
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with a pipeline file; nothing above it is searched."""
    monkeypatch.delenv("PIPELINEKIT_HOME", raising=False)
    monkeypatch.setenv("PIPELINEKIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "project"
    (root / "src" / "deep").mkdir(parents=True)
    (root / "p.py").write_text(textwrap.dedent(PIPELINE))
    return root


def test_a_command_in_a_subfolder_finds_the_store_above(project, cli, monkeypatch):
    """Today's cut: the store was looked for only in the current folder."""
    monkeypatch.chdir(project)
    assert cli("run", "p.py", "--plain")[0] == 0
    monkeypatch.chdir(project / "src" / "deep")
    status, out, err = cli("status", "latest")
    assert status == 0, err
    assert "pipeline p Succeeded" in out
    # A run from below records into the same store, not a new .pipelinekit here.
    assert cli("run", "../../p.py", "--plain")[0] == 0
    assert not (project / "src" / "deep" / ".pipelinekit").exists()
    status, out, _ = cli("history")
    assert status == 0
    assert len(out.splitlines()) == 3  # header, two runs, no next page line


def test_no_store_is_one_line_saying_where_it_looked_and_how_to_fix_it(project, cli, monkeypatch):
    monkeypatch.chdir(project / "src")
    for command in (("history",), ("status", "latest"), ("logs", "latest", "S.A")):
        status, out, err = cli(*command)
        assert status == 2
        assert out == ""
        (line,) = err.splitlines()
        assert f"no .pipelinekit/ folder from '{project / 'src'}' up to '{project}'" in line
        assert "--store PATH" in line
        assert "PIPELINEKIT_HOME" in line
    status, _, err = cli("resume", "latest")
    assert status == 2
    assert "no store found" in err


def test_run_takes_store_as_the_other_commands_do(project, cli, monkeypatch):
    """Today's cut: run took --workdir, the others --store."""
    monkeypatch.chdir(project)
    status, _, err = cli("run", "p.py", "--store", "elsewhere", "--plain")
    assert status == 0, err
    assert err == ""
    assert (project / "elsewhere" / "state.db").is_file()
    assert not (project / ".pipelinekit").exists()
    for store in ("elsewhere", "elsewhere/state.db"):
        status, out, err = cli("status", "latest", "--store", store)
        assert status == 0, err
        assert "Succeeded" in out


def test_workdir_still_works_with_one_warning(project, cli, monkeypatch):
    monkeypatch.chdir(project)
    status, _, err = cli("run", "p.py", "--workdir", "old", "--plain")
    assert status == 0
    assert err == "pipelinekit: warning: --workdir is deprecated; use --store DIR\n"
    assert (project / "old" / "state.db").is_file()
    status, _, err = cli("run", "p.py", "--workdir", "old", "--store", "new", "--plain")
    assert status == 2
    assert "give only --store" in err


def test_store_wins_over_home_which_wins_over_the_walk(project, monkeypatch):
    (project / ".pipelinekit").mkdir()
    here = project / "src"
    assert find_store(None, create=True, cwd=here).home == project / ".pipelinekit"
    monkeypatch.setenv("PIPELINEKIT_HOME", str(project / "home"))
    assert find_store(None, create=True, cwd=here).home == project / "home"
    assert find_store("given", create=True, cwd=here).home == pathlib.Path("given").absolute()
    custom = find_store(str(project / "x.db"), create=True, cwd=here)
    assert (custom.home, custom.database) == (project, project / "x.db")


def test_run_makes_a_new_store_here_only_when_none_is_found(project, monkeypatch):
    found = find_store(None, create=True, cwd=project / "src")
    assert (found.home, found.how) == (project / "src" / ".pipelinekit", "new")


def test_the_walk_stops_at_a_ceiling_and_at_a_mount_boundary(tmp_path, monkeypatch):
    (tmp_path / ".pipelinekit").mkdir()
    inner = tmp_path / "mnt" / "project"
    inner.mkdir(parents=True)
    monkeypatch.delenv("PIPELINEKIT_CEILING_DIRECTORIES", raising=False)
    environ: dict[str, str] = {}
    assert walk_up(inner, environ)[0] == tmp_path / ".pipelinekit"
    assert walk_up(inner, {"PIPELINEKIT_CEILING_DIRECTORIES": str(tmp_path)}) == (
        None,
        inner.parent,
    )
    # A filesystem mounted at mnt/: its device differs from its parent's, as git sees it.
    real_stat = pathlib.Path.stat
    mount = tmp_path / "mnt"

    def stat(self, **kwargs):
        result = real_stat(self, **kwargs)
        if self == mount or mount in self.parents:
            values = list(result)
            values[2] = result.st_dev + 1  # st_dev
            return os.stat_result(values)
        return result

    monkeypatch.setattr(pathlib.Path, "stat", stat)
    assert walk_up(inner, environ) == (None, mount)


def test_hints_name_the_store_only_when_the_same_command_here_would_miss_it(project):
    (project / ".pipelinekit").mkdir()
    found = find_store(None, create=True, cwd=project)
    assert store_option(found, cwd=project / "src") == ""
    other = find_store(str(project / "other"), create=True, cwd=project)
    assert store_option(other, cwd=project) == f" --store {project / 'other'}"


def test_history_offers_a_next_page_only_when_there_is_one(project, cli, monkeypatch):
    """Today's cut: every page said '--page K+1 for older ones', the last one too."""
    import json  # noqa: PLC0415

    monkeypatch.chdir(project)
    for _ in range(3):
        assert cli("run", "p.py", "--plain")[0] == 0
    _, out, _ = cli("history", "--limit", "2")
    assert out.splitlines()[-1] == "page 1 (2 shown); --page 2 for older ones"
    _, out, _ = cli("history", "--limit", "2", "--page", "2")
    assert out.splitlines()[-1] == "page 2 (1 shown), the last"
    _, out, _ = cli("history", "--limit", "3")
    assert "--page" not in out
    assert json.loads(cli("history", "--limit", "2", "--json")[1])["nextPage"] == 2
    assert "nextPage" not in json.loads(cli("history", "--limit", "3", "--json")[1])
