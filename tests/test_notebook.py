"""colab.ipynb: valid nbformat-4 JSON, the cells in the order a user runs them, and every file, module and
CLI command it relies on really exists in this repository."""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "colab.ipynb"

# What each step's code cell must contain, in the order the steps must appear.
STEPS = [
    ("clone", "git clone"),
    ("install", "requirements.txt"),
    ("drive", "drive.mount("),
    ("access code", "MNIST_ACCESS_CODE"),
    ("start", "streamlit run app.py"),
    ("wait", "/_stcore/health"),
    ("cloudflared", "trycloudflare"),
    ("ngrok", "NGROK_TOKEN"),
    ("cli train", "python -m mnist_core train"),
    ("resume", "train --resume"),
]


@pytest.fixture(scope="module")
def nb() -> dict:
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))


def _src(cell: dict) -> str:
    s = cell["source"]
    return s if isinstance(s, str) else "".join(s)


@pytest.fixture(scope="module")
def code_cells(nb) -> list[str]:
    return [_src(c) for c in nb["cells"] if c["cell_type"] == "code"]


def _shell_lines(code_cells: list[str]) -> list[str]:
    """The shell commands of the notebook (IPython `!` lines), stripped of the `!`."""
    return [line.strip()[1:] for src in code_cells for line in src.splitlines() if line.strip().startswith("!")]


def test_valid_nbformat4_structure(nb):
    assert nb["nbformat"] == 4 and isinstance(nb["nbformat_minor"], int) and nb["nbformat_minor"] >= 0
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert nb["metadata"]["kernelspec"]["language"] == "python"
    assert nb["cells"], "the notebook has no cells"
    ids = []
    for i, c in enumerate(nb["cells"]):
        assert c["cell_type"] in ("markdown", "code"), f"cell {i}: unknown type {c['cell_type']!r}"
        assert isinstance(c["metadata"], dict), f"cell {i}: metadata must be an object"
        s = c["source"]
        assert isinstance(s, str) or (isinstance(s, list) and all(isinstance(x, str) for x in s)), \
            f"cell {i}: source must be a string or a list of strings"
        assert _src(c).strip(), f"cell {i} is empty"
        if c["cell_type"] == "code":
            # shipped clean: no stale outputs from someone's session
            assert c["outputs"] == [] and c["execution_count"] is None, f"cell {i} carries outputs"
        else:
            assert "outputs" not in c and "execution_count" not in c, f"markdown cell {i} has code fields"
        if nb["nbformat_minor"] >= 5:
            assert isinstance(c.get("id"), str) and re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", c["id"]), \
                f"cell {i}: nbformat 4.5 needs an id"
            ids.append(c["id"])
    assert len(ids) == len(set(ids)), "cell ids must be unique"


def test_code_cells_are_valid_python(code_cells):
    """Every code cell parses once IPython's `!`/`%` lines are taken out (a typo would only show on Colab)."""
    for i, src in enumerate(code_cells):
        plain = "\n".join(re.sub(r"^(\s*)[!%].*$", r"\1pass", line) for line in src.splitlines())
        try:
            ast.parse(plain)
        except SyntaxError as e:  # pragma: no cover - the assertion message is the point
            pytest.fail(f"code cell {i} is not valid Python: {e}\n{src}")


def test_steps_in_order(code_cells):
    positions = []
    for step, marker in STEPS:
        hits = [i for i, src in enumerate(code_cells) if marker in src]
        assert hits, f"no code cell for step {step!r} (looked for {marker!r})"
        positions.append((hits[0], step))
    order = [step for _, step in sorted(positions)]
    assert order == [step for step, _ in STEPS], f"steps out of order: {order}"


def test_repo_url_is_a_placeholder_the_user_sets(code_cells):
    first = code_cells[0]
    assert re.search(r'^REPO_URL = "https://github\.com/<you>/mnist-studio"$', first, re.M)
    assert "{REPO_URL}" in first, "the clone command must use REPO_URL"


def test_files_the_notebook_uses_exist(code_cells):
    text = "\n".join(code_cells)
    for rel in ("app.py", "requirements.txt", "mnist_core/__main__.py"):
        assert (ROOT / rel).is_file(), rel
    for rel in re.findall(r'open\("([\w./-]+)"\)', text):
        if not rel.startswith("/") and not rel.endswith(".log"):  # logs are written by the notebook itself
            assert (ROOT / rel).is_file(), f"the notebook opens {rel}, which is not in the repository"
    # the pretrained model it copies to Drive lives where the runs code expects it
    from mnist_core import runs

    assert f'"models/{runs.PRETRAINED}"' in text
    assert runs.runs_root().name == "models"


def test_app_is_started_headless_on_the_port_everything_else_uses(code_cells):
    text = "\n".join(code_cells)
    start = next(line for line in _shell_lines(code_cells) if "streamlit run" in line)
    argv = shlex.split(start.split(">")[0])
    assert argv[:4] == ["nohup", "streamlit", "run", "app.py"]
    port = argv[argv.index("--server.port") + 1]
    assert argv[argv.index("--server.headless") + 1] == "true"
    assert f"localhost:{port}/_stcore/health" in text
    assert f'"--url", "http://localhost:{port}"' in text  # cloudflared
    assert f'"http", "{port}"' in text  # ngrok
    assert "localtunnel" not in text and "serve_kernel_port_as_window" not in text  # no WebSockets / a password page
    # streamlit is a requirement, so the `streamlit` command exists after the install cell
    assert re.search(r"^streamlit\b", (ROOT / "requirements.txt").read_text(), re.M)


def _functions_of(src: str, env: dict) -> dict:
    """The cell's imports and functions, defined without running the rest of the cell."""
    plain = "\n".join(re.sub(r"^(\s*)[!%].*$", r"\1pass", line) for line in src.splitlines())
    ns: dict = {}
    for node in ast.parse(plain).body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef)):
            exec(compile(ast.Module([node], []), "<cell>", "exec"), ns)
    ns.update(env)
    return ns


CLOUDFLARED_LOG = ("2026-01-01T00:00:00Z INF |  Your quick Tunnel has been created! Visit it at (it may take some "
                   "time to be reachable):  |\n2026-01-01T00:00:00Z INF |  https://bright-owl-sample-run.trycloudflare.com"
                   "                 |\n")
NGROK_LOG = ('t=2026-01-01T00:00:00+0000 lvl=info msg="started tunnel" obj=tunnels name=command_line '
             "addr=http://localhost:8501 url=https://1a2b-34-56-78-90.ngrok-free.app\n")


def test_tunnels_need_the_access_code_and_find_their_address(code_cells, tmp_path, monkeypatch):
    """The tunnel cells' logic with the network stubbed at the process boundary: a fake tunnel program
    (a Popen stand-in) writes what the real one logs; no tunnel opens before the access code is set."""
    cf = next(s for s in code_cells if "trycloudflare" in s)
    ng = next(s for s in code_cells if "NGROK_TOKEN" in s)
    ns = _functions_of(cf, {})
    started = []

    def fake_popen(log_text):
        def popen(cmd, stdout, **kw):
            started.append(cmd)
            stdout.write(log_text)
            stdout.flush()
        return popen

    monkeypatch.setattr("time.sleep", lambda s: None)
    monkeypatch.delenv("MNIST_ACCESS_CODE", raising=False)
    log = str(tmp_path / "t.log")
    cf_pattern = re.search(r'r"(https://[^"]+trycloudflare[^"]+)"', cf).group(1)
    with pytest.raises(RuntimeError, match="access code"):
        ns["start_tunnel"](["cloudflared"], log, cf_pattern, popen=fake_popen(CLOUDFLARED_LOG))
    assert not started
    access = _functions_of(next(s for s in code_cells if "MNIST_ACCESS_CODE" in s and "def set_access_code" in s), {})
    code = access["set_access_code"]("")
    assert len(code) >= 8 and access["set_access_code"]("") == code  # random once, then kept
    assert access["set_access_code"]("mine") == "mine"
    url = ns["start_tunnel"](["cloudflared"], log, cf_pattern, popen=fake_popen(CLOUDFLARED_LOG))
    assert url == "https://bright-owl-sample-run.trycloudflare.com"
    ng_pattern = re.search(r'r"(https://[^"]+ngrok[^"]+)"', ng).group(1)
    assert ns["start_tunnel"](["ngrok"], log, ng_pattern, popen=fake_popen(NGROK_LOG)) == \
        "https://1a2b-34-56-78-90.ngrok-free.app"
    assert ns["start_tunnel"](["ngrok"], log, ng_pattern, wait_s=3, popen=fake_popen("starting\n")) is None


def test_the_access_code_is_set_before_the_app_starts(code_cells):
    access = next(i for i, s in enumerate(code_cells) if "def set_access_code" in s)
    start = next(i for i, s in enumerate(code_cells) if "streamlit run app.py" in s)
    assert access < start  # the server reads MNIST_ACCESS_CODE when it starts
    assert 'os.environ["MNIST_ACCESS_CODE"]' in code_cells[access]
    assert "MNIST_ACCESS_CODE" in (ROOT / "mnist_core" / "identity.py").read_text()


def test_install_cell_swaps_tensorflow_cpu_for_the_same_tensorflow_version(code_cells):
    """Colab preinstalls `tensorflow`; the cell must install that package at requirements.txt's pin."""
    src = next(s for s in code_cells if "requirements.txt" in s and "pip" in s)
    plain = "\n".join(re.sub(r"^(\s*)[!%].*$", r"\1pass", line) for line in src.splitlines())
    tree = ast.parse(plain)
    ns: dict = {}
    for node in tree.body:  # define the helper only; the rest of the cell would run pip
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef)):
            exec(compile(ast.Module([node], []), "<cell>", "exec"), ns)
    reqs = (ROOT / "requirements.txt").read_text()
    pin = re.search(r"^tensorflow-cpu==([\w.]+)", reqs, re.M)
    assert pin, "requirements.txt must pin tensorflow-cpu with =="
    out = ns["colab_requirements"](reqs)
    assert f"tensorflow=={pin.group(1)}" in out.splitlines()
    assert not any(ln.split("#")[0].strip().startswith("tensorflow-cpu") for ln in out.splitlines())
    # nothing else changes
    assert [ln for ln in out.splitlines() if not ln.startswith("tensorflow")] == \
        [ln for ln in reqs.splitlines() if not ln.startswith("tensorflow")]


def test_cli_commands_parse_with_the_real_cli(code_cells, monkeypatch):
    """Every `python -m mnist_core ...` line is parsed by the real argparse CLI (subcommand and options),
    with the command functions replaced so nothing runs."""
    from mnist_core import __main__ as cli

    called: list[tuple[str, dict]] = []
    for name in ("cmd_train", "cmd_evaluate", "cmd_predict", "cmd_runs", "cmd_info", "cmd_export"):
        monkeypatch.setattr(cli, name, lambda a, _n=name: called.append((_n, vars(a))) or 0)
    lines = [ln for ln in _shell_lines(code_cells) if "python -m mnist_core" in ln]
    assert lines, "the notebook runs no CLI command"
    for line in lines:
        argv = shlex.split(re.sub(r"\{[A-Z_]+\}", "X", line))  # IPython {VAR} expansions
        assert argv[:3] == ["python", "-m", "mnist_core"], line
        n = len(called)
        try:
            assert cli.main(argv[3:]) == 0
        except SystemExit as e:
            pytest.fail(f"the CLI rejects `{line}` (exit {e.code})")
        assert len(called) == n + 1, line
    assert called[0][0] == "cmd_train" and called[0][1]["preset"] == "fast"
    assert {c for c, _ in called} >= {"cmd_train", "cmd_evaluate", "cmd_export"}
    assert any(c == "cmd_train" and a["resume"] for c, a in called)  # the resume cell


def test_cli_evaluates_the_run_it_just_trained(code_cells):
    src = next(s for s in code_cells if "python -m mnist_core train" in s)
    name = re.search(r'RUN_NAME = "([\w.-]+)"', src).group(1)
    from mnist_core.runs import safe_run_name

    assert safe_run_name(name) == name
    assert "--name {RUN_NAME}" in src and "evaluate {RUNS_DIR}/{RUN_NAME}" in src


def test_drive_cell_sets_the_runs_setting(code_cells):
    src = next(s for s in code_cells if "drive.mount(" in s)
    assert re.search(r"^USE_DRIVE = False$", src, re.M), "Drive must be opt-in"
    assert 'os.environ["MNIST_RUNS_DIR"] = RUNS_DIR' in src
    # the setting name is the one the core reads
    assert 'os.environ.get("MNIST_RUNS_DIR")' in (ROOT / "mnist_core" / "runs.py").read_text()
