"""Shipping: the README's two commands, `.ci/run` running exactly the test command (and failing when it
fails), the requirement pins against what the code imports and what is installed, the Streamlit config,
and the README's references (screenshots, settings, CLI examples)."""

from __future__ import annotations

import ast
import functools
import os
import re
import shlex
import stat
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI = ROOT / ".ci" / "run"
APP_COMMAND = "pip install -r requirements.txt && streamlit run app.py"
# our own packages, and the modules tests/benchmarks import by path (benchmarks/*.py, tests' helpers)
LOCAL_PACKAGES = {"mnist_core", "ui", "app_pages", "tests", "benchmarks", "app"} | {
    p.stem for d in ("benchmarks", "tests") for p in (ROOT / d).rglob("*.py")}
# import name -> requirement name where the requirement deliberately differs from the installed dist
ALIASES = {"tensorflow": {"tensorflow-cpu", "tensorflow"}}


def _code_blocks(text: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S)]


def _readme_test_command() -> str:
    return _code_blocks(README)[1]


def _requirements(path: Path) -> tuple[list[Requirement], list[str]]:
    reqs, includes = [], []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            includes.append(line[3:].strip())
        else:
            reqs.append(Requirement(line))
    return reqs, includes


RUNTIME, _ = _requirements(ROOT / "requirements.txt")
DEV, DEV_INCLUDES = _requirements(ROOT / "requirements-dev.txt")


def _names(reqs) -> set[str]:
    return {canonicalize_name(r.name) for r in reqs}


# --- the README's two commands and .ci/run ------------------------------------------------------
def test_readme_opens_with_the_two_commands():
    blocks = _code_blocks(README)
    assert blocks[0] == APP_COMMAND
    test_cmd = blocks[1]
    assert "\n" not in test_cmd, "the test command must be one line (CI runs it verbatim)"
    parts = [p.strip() for p in test_cmd.split("&&")]
    assert parts[0] == "pip install -r requirements-dev.txt"
    assert "ruff check ." in parts, "ruff must be part of the test command"
    assert re.fullmatch(r"MNIST_DATA_DIR=\S+ python -m pytest", parts[-1]), parts[-1]
    # both commands come before any other section
    assert README.index(test_cmd) < README.index("\n## ")


def test_ci_runs_exactly_the_readme_test_command_last():
    lines = [ln.strip() for ln in CI.read_text().splitlines()]
    code = [ln for ln in lines if ln and not ln.startswith("#")]
    assert code[-1] == _readme_test_command(), "the README's test command must be .ci/run's last command"
    assert code[0] == "set -euo pipefail" or "set -euo pipefail" in code[:3]
    require = next(i for i, ln in enumerate(code) if re.match(r"export MNIST_REQUIRE_E2E=1\b", ln))
    assert require < len(code) - 1
    assert any("apt-get install" in ln and "chromium" in ln for ln in code)
    data_dir = re.search(r"MNIST_DATA_DIR=(\S+)", _readme_test_command()).group(1)
    assert any(f"-d {data_dir} " in ln for ln in code), "CI must check that the README's data dir exists"
    assert os.access(CI, os.X_OK), ".ci/run must be executable"
    subprocess.run(["bash", "-n", str(CI)], check=True)


def _fake_repo(tmp_path: Path, pytest_rc: int) -> tuple[Path, Path, dict]:
    """A copy of .ci/run in a scratch tree whose pip/ruff/python/apt-get are stubs recording their calls."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "mnist").mkdir(parents=True)
    (repo / ".ci" / "run").write_text(CI.read_text())
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    calls = tmp_path / "calls.log"
    stubs = {
        "pip": "exit 0",
        "ruff": "exit 0",
        "apt-get": "exit 0",
        "python": f'echo "REQUIRE_E2E=$MNIST_REQUIRE_E2E DATA=$MNIST_DATA_DIR" >> "{calls}"; exit {pytest_rc}',
    }
    for name, body in stubs.items():
        f = bin_ / name
        f.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n{body}\n')
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return repo, calls, env


@pytest.mark.parametrize("pytest_rc", [0, 1, 5])
def test_ci_exit_status_is_the_test_commands(tmp_path, pytest_rc):
    """A failing test (1) or no test collected (5) fails CI; the tests see MNIST_REQUIRE_E2E=1."""
    repo, calls, env = _fake_repo(tmp_path, pytest_rc)
    r = subprocess.run(["bash", str(repo / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == pytest_rc, r.stderr
    log = calls.read_text()
    assert "pip install -r requirements-dev.txt" in log
    assert "ruff check ." in log
    assert "python -m pytest" in log
    assert "REQUIRE_E2E=1 DATA=../shared/data/mnist" in log


def test_ci_fails_when_ruff_fails(tmp_path):
    repo, calls, env = _fake_repo(tmp_path, 0)
    (tmp_path / "bin" / "ruff").write_text("#!/bin/sh\nexit 1\n")
    r = subprocess.run(["bash", str(repo / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "python -m pytest" not in calls.read_text()


def test_ci_fails_without_the_data(tmp_path):
    repo, calls, env = _fake_repo(tmp_path, 0)
    (tmp_path / "shared" / "data" / "mnist").rmdir()
    r = subprocess.run(["bash", str(repo / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "shared/data/mnist" in r.stderr


def test_require_e2e_turns_a_missing_browser_into_a_failure(monkeypatch):
    from tests.e2e import conftest as e2e

    monkeypatch.setenv("MNIST_REQUIRE_E2E", "1")
    with pytest.raises(pytest.fail.Exception, match="browser tests cannot run: no chromium"):
        e2e._need("no chromium")
    monkeypatch.delenv("MNIST_REQUIRE_E2E")
    with pytest.raises(pytest.skip.Exception):
        e2e._need("no chromium")


# --- requirements -------------------------------------------------------------------------------
def test_runtime_pins():
    by_name = {canonicalize_name(r.name): r for r in RUNTIME}
    assert len(by_name) == len(RUNTIME), "a package is listed twice in requirements.txt"
    tf = by_name.get("tensorflow-cpu")
    assert tf is not None and "tensorflow" not in by_name, "use tensorflow-cpu, not the CUDA build"
    assert [s.operator for s in tf.specifier] == ["=="], "pin tensorflow-cpu exactly"
    st_spec = by_name["streamlit"].specifier
    assert "1.66.0" in st_spec and "1.52.2" not in st_spec, "the Draw pad needs Components v2 (1.53+)"
    assert "1.65.0" not in st_spec, "Streamlit 1.65 failed the Draw tests (the drawing was lost on a rerun)"
    keras = by_name["keras"].specifier
    assert "3.15.0" in keras and "3.14.0" not in keras, "the bundled model was saved by Keras 3.15"
    for r in RUNTIME:
        assert str(r.specifier), f"{r.name} has no version constraint"


def test_dev_requirements_add_the_test_tools_to_the_runtime():
    assert DEV_INCLUDES == ["requirements.txt"]
    assert _names(DEV) >= {"pytest", "playwright", "ruff"}
    assert not (_names(DEV) & _names(RUNTIME)), "dev requirements repeat a runtime one"


def test_installed_versions_satisfy_the_pins():
    """The environment the tests run in is one the pins allow (so the tests test what ships)."""
    for r in RUNTIME + DEV:
        if r.marker is not None and not r.marker.evaluate():
            continue
        names = [r.name] + (["tensorflow"] if canonicalize_name(r.name) == "tensorflow-cpu" else [])
        versions = []
        for n in names:
            try:
                versions.append(metadata.version(n))
            except metadata.PackageNotFoundError:
                pass
        assert versions, f"{r.name} is not installed"
        assert any(r.specifier.contains(v, prereleases=True) for v in versions), \
            f"{r.name} {versions} does not satisfy {r.specifier}"


def _third_party_imports(paths: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    stdlib = set(sys.stdlib_module_names)
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for m in mods:
                top = m.split(".")[0]
                if top not in stdlib and top not in LOCAL_PACKAGES and top != "__future__":
                    found.setdefault(top, path)
    return found


@functools.cache
def _top_level_names(dist_name: str) -> frozenset[str]:
    """The top-level modules an installed distribution provides, from its file list (a distribution's
    top_level.txt may be missing: meson-built wheels such as scikit-learn's lack it)."""
    try:
        files = metadata.distribution(dist_name).files or ()
    except metadata.PackageNotFoundError:
        return frozenset()
    return frozenset(f.parts[0].removesuffix(".py") for f in files
                     if f.parts and not f.parts[0].endswith((".dist-info", ".data", "..")))


def _covered(module: str, reqs: list[Requirement]) -> bool:
    wanted = _names(reqs)
    dists = {canonicalize_name(d) for d in metadata.packages_distributions().get(module, ())}
    dists |= {canonicalize_name(a) for a in ALIASES.get(module, ())}
    dists.add(canonicalize_name(module))
    if dists & wanted:
        return True
    return any(module in _top_level_names(r.name) for r in reqs)


# Imported by the app only when the user opts in (and then named in the message that asks for it); they
# must still be dev requirements, so their tests run.
OPTIONAL = {"ray": "the Ray engine (docs/sweeps.md)"}


def test_everything_the_app_imports_is_a_requirement():
    files = [ROOT / "app.py", *sorted((ROOT / "app_pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py")),
             *sorted((ROOT / "mnist_core").glob("*.py"))]
    missing = {m: str(p.relative_to(ROOT)) for m, p in _third_party_imports(files).items()
               if not _covered(m, RUNTIME) and not (m in OPTIONAL and _covered(m, DEV))}
    assert not missing, f"imported but not in requirements.txt: {missing}"


def test_everything_the_tests_and_benchmarks_import_is_a_dev_requirement():
    files = [*sorted((ROOT / "tests").rglob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py"))]
    missing = {m: str(p.relative_to(ROOT)) for m, p in _third_party_imports(files).items()
               if not _covered(m, RUNTIME + DEV)}
    assert not missing, f"imported but not in requirements-dev.txt / requirements.txt: {missing}"


# --- .streamlit/config.toml ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def st_config() -> dict:
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())


def test_config_keys_and_types_are_streamlits(st_config):
    from streamlit import config as stc

    options = stc._config_options_template
    for section, values in st_config.items():
        for key, value in values.items():
            name = f"{section}.{key}"
            assert name in options, f"{name} is not a Streamlit option (typo?)"
            typ = options[name].type
            assert isinstance(value, typ) or (typ is float and isinstance(value, int)), \
                f"{name} = {value!r} should be a {typ.__name__}"
            assert not options[name].deprecated, f"{name} is deprecated"


def test_config_values_work_on_community_cloud(st_config):
    from mnist_core.inference import MAX_MODEL_BYTES
    from mnist_core.preprocess import MAX_UPLOAD_BYTES

    server = st_config["server"]
    assert server["enableXsrfProtection"] is True, "Cloud forces XSRF on: develop with it on"
    assert server.get("enableCORS", True) is True, "XSRF protection needs CORS protection on"
    assert server["headless"] is True
    assert server["fileWatcherType"] == "none", "run folders change during training: do not watch them"
    mb = server["maxUploadSize"]
    assert 1 <= mb <= 200
    assert mb * 2**20 >= max(MAX_MODEL_BYTES, MAX_UPLOAD_BYTES), "the server limit is below the app's own"
    assert st_config["browser"]["gatherUsageStats"] is False
    assert st_config["client"]["toolbarMode"] in ("auto", "developer", "viewer", "minimal")
    # "full" and "stacktrace" show tracebacks (server paths) to every user; "type" and "none" do not.
    assert st_config["client"]["showErrorDetails"] in ("type", "none")
    assert "port" not in server and "address" not in server, "Cloud and CI choose the address and port"


# --- README references --------------------------------------------------------------------------
def test_readme_shows_every_page():
    app = (ROOT / "app.py").read_text()
    pages = re.findall(r'"(\w+)"\]?:? =? ?st\.Page\("app_pages/(\w+)\.py", title="([^"]+)"', app)
    assert {f for _, f, _ in pages} == {p.stem for p in (ROOT / "app_pages").glob("*.py")}, pages
    for key, _file, title in pages:
        assert f"](docs/screenshots/{key}.png)" in README, f"no screenshot of {title} in the README"
        assert f"| **{title}** |" in README, f"{title} is missing from the README's page table"


def test_readme_links_exist():
    links = re.findall(r"\]\(([^)#\s]+)\)", README)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert local
    for link in local:
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"


def test_readme_documents_every_setting():
    code = "\n".join(p.read_text() for d in ("mnist_core", "ui", "app_pages") for p in (ROOT / d).glob("*.py"))
    settings = set(re.findall(r"""environ(?:\.get)?[(\[]\s*["'](MNIST_[A-Z_]+)["']""", code))
    assert settings >= {"MNIST_DATA_DIR", "MNIST_RUNS_DIR", "MNIST_MAX_TRAININGS", "MNIST_OFFLINE"}
    section = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    for s in sorted(settings):
        assert f"`{s}`" in section, f"{s} is read by the code but not in the README's settings table"


def test_readme_cli_examples_parse_with_the_real_cli(monkeypatch):
    from mnist_core import __main__ as cli

    called = []
    subcommands = ("train", "evaluate", "predict", "runs", "info")
    for sub in subcommands:
        monkeypatch.setattr(cli, f"cmd_{sub}", lambda a, _s=sub: called.append(_s) or 0)
    text = README.replace("\\\n", " ")
    commands = re.findall(r"^(?:\$ )?(python -m mnist_core [^\n]+)$", text, re.M)
    assert commands
    for c in commands:
        argv = shlex.split(c.split(" #")[0])[3:]
        if argv[0].startswith("{"):
            continue  # the usage line `python -m mnist_core {train,evaluate,...}`
        try:
            assert cli.main(argv) == 0
        except SystemExit as e:
            pytest.fail(f"README example `{c}` is rejected by the CLI (exit {e.code})")
    assert set(called) == set(subcommands), "the README shows an example of every subcommand"


def test_readme_recipes():
    for heading in ("### Google Colab", "### Streamlit Community Cloud", "### Classroom"):
        assert heading in README
    cloud = README.split("### Streamlit Community Cloud", 1)[1].split("\n### ", 1)[0]
    assert "Python 3.13" in cloud and "`app.py`" in cloud and "2.7 GB" in cloud
    assert re.search(r"\d,\d{3} MB", cloud), "the Cloud recipe states measured memory"
    classroom = README.split("### Classroom", 1)[1]
    for flag in ("--server.address 0.0.0.0", "MNIST_MAX_TRAININGS", "STREAMLIT_CLIENT_SHOW_ERROR_DETAILS",
                 "--client.showErrorDetails", "--client.toolbarMode=viewer"):
        assert flag in classroom, flag


def test_shipped_files_are_not_gitignored():
    paths = ["colab.ipynb", "README.md", ".ci/run", ".streamlit/config.toml", "models/pretrained/model.keras",
             *[f"docs/screenshots/{p}.png" for p in ("home", "train", "dataset", "evaluate", "draw")]]
    r = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    if r.returncode == 128:
        pytest.skip(f"not a git checkout: {r.stderr.strip()}")
    assert r.stdout.strip() == "", f"ignored by .gitignore but must ship: {r.stdout.split()}"
