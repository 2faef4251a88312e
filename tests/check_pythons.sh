#!/usr/bin/env bash
# Checks the project on several Pythons, each in a fresh virtual environment:
#   tests/check_pythons.sh PYTHON...     e.g. tests/check_pythons.sh ~/.pyenv/versions/3.1[0-3]*/bin/python
# For each interpreter: a new venv with requirements-dev.txt from PyPI alone (this machine's pip config,
# find-links, constraints and cache are ignored, so it resolves as a stranger's laptop would); then, in a
# clone of this repo at REV (default HEAD; committed work only): the core tests (not slow), the AppTest pages, a
# one-epoch CLI training on 500 images, and the real server: /_stcore/health, then Home and Draw rendered
# in Chromium from the bundled sample (screenshots; Draw shows its canvas only if the pretrained model
# loads). E2E=1 adds the browser tests (slow).
# Prints one line per Python and exits 1 if any step failed. Logs, the resolved versions and the
# screenshots stay in $LOGS (default /tmp/check_pythons-logs); venvs and clones are removed (KEEP=1
# keeps them, to rerun a failing step by hand).
# Not run by CI (CI has one Python): it is the recipe behind the README's list of checked Pythons.
# Needs the MNIST IDX files (MNIST_DATA_DIR, default ../shared/data/mnist), curl and Debian's chromium.
set -uo pipefail
[ $# -gt 0 ] || { sed -n '2,3p' "$0"; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
DATA=$(cd "${MNIST_DATA_DIR:-$REPO/../shared/data/mnist}" && pwd) || exit 2
LOGS=${LOGS:-/tmp/check_pythons-logs}
WORK=$(mktemp -d)
[ "${KEEP:-0}" = 1 ] && echo "venvs and clones kept in $WORK"
SERVER=
trap 'if [ -n "$SERVER" ]; then kill -- -"$SERVER" 2>/dev/null; fi; [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"' EXIT
KEY='tensorflow-cpu|keras|streamlit|streamlit-drawable-canvas|plotly|scikit-learn|pandas|numpy|pillow|pyarrow|protobuf'

# pip as on a new machine: PyPI, no config file, no PIP_* settings, no cache.
for v in $(compgen -e | grep '^PIP_'); do unset "$v"; done
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 MNIST_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2

# Renders Home (prints its two metrics: data and model) and Draw (waits for the canvas) in Chromium;
# fails on an exception box or a missing canvas.
PAGES_PY='
import sys
from playwright.sync_api import sync_playwright
url, out = sys.argv[1:]
with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
    pg = b.new_page(viewport={"width": 1400, "height": 1000})
    pg.goto(url)
    pg.wait_for_function("document.querySelectorAll(\"[data-testid=stMetric]\").length >= 2", timeout=120_000)
    pg.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=60_000)
    assert pg.locator("[data-testid=stException]").count() == 0, "exception on Home"
    metrics = pg.locator("[data-testid=stMetric]").all_inner_texts()
    pg.screenshot(path=f"{out}/home.png", full_page=True)
    pg.goto(url + "/draw")
    try:
        pg.locator("canvas.upper-canvas").wait_for(timeout=120_000)
    finally:
        pg.screenshot(path=f"{out}/draw.png", full_page=True)
    assert pg.locator("[data-testid=stException]").count() == 0, "exception on Draw"
    print(" | ".join(": ".join(s for s in m.splitlines() if s.strip()) for m in metrics) + " | Draw: canvas")
'

note() { line+="  $1"; }
counts() { tail -n1 "$out/$1.log" | sed -E 's/=//g; s/, [0-9]+ warnings?//; s/ in [0-9.]+s.*//; s/^ +//'; }
# run NAME CMD...: CMD in the clone, the venv's python first on PATH, output in $out/NAME.log
run() { local name=$1; shift
  (cd "$clone" && PATH="$venv/bin:$PATH" "$@") >"$out/$name.log" 2>&1 && return
  note "$name FAILED ($(counts "$name"))"; fail=1; return 1; }

fail=0
for py in "$@"; do
  ver=$("$py" -c 'import platform; print(platform.python_version())') || { echo "$py: not a Python"; fail=1; continue; }
  out=$LOGS/$ver venv=$WORK/venv-$ver clone=$WORK/repo-$ver line="$ver:"
  rm -rf "$out"; mkdir -p "$out"

  git clone -q "$REPO" "$clone" && git -C "$clone" checkout -q "${REV:-HEAD}" || { fail=1; continue; }
  note "at $(git -C "$clone" rev-parse --short HEAD):"
  t0=$SECONDS
  if ! { "$py" -m venv "$venv" && "$venv/bin/python" -m pip install --no-cache-dir -q -U pip &&
         "$venv/bin/python" -m pip install --no-cache-dir -r "$clone/requirements-dev.txt"; } >"$out/install.log" 2>&1; then
    echo "$line  install FAILED ($(grep -m1 -E '^ERROR' "$out/install.log"))"; fail=1; continue
  fi
  "$venv/bin/python" -m pip freeze >"$out/freeze.txt"
  note "install ok $((SECONDS - t0)) s $(du -sh "$venv" | cut -f1);"
  note "$(tr _ - <"$out/freeze.txt" | grep -iE "^($KEY)==" | tr '\n' ' ')"

  run core env MNIST_DATA_DIR="$DATA" python -m pytest tests/core -x -q -m "not slow" && note "core: $(counts core)"
  run app env MNIST_DATA_DIR="$DATA" python -m pytest tests/app -x -q && note "app: $(counts app)"
  run train python -m mnist_core train --preset classic --epochs 1 --limit 500 --data-dir "$DATA" \
      --run-dir "$WORK/runs-$ver/r1" && note "train: $(grep -o 'test accuracy [0-9.]*' "$out/train.log")"

  # The real server, from the bundled sample like a first launch (no MNIST_DATA_DIR), on a free port.
  port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  (cd "$clone" && exec env -u MNIST_DATA_DIR setsid "$venv/bin/python" -m streamlit run app.py \
      --server.port "$port" --server.address 127.0.0.1 --server.headless true) >"$out/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 240); do   # up to 120 s for the health endpoint
    curl -fs "http://127.0.0.1:$port/_stcore/health" | grep -qx ok && break; sleep 0.5
  done
  if curl -fs "http://127.0.0.1:$port/_stcore/health" | grep -qx ok; then
    run pages python -c "$PAGES_PY" "http://127.0.0.1:$port" "$out" && note "pages: $(tail -n1 "$out/pages.log")"
  else note "health FAILED"; fail=1; fi
  kill -- -"$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; SERVER=

  if [ "${E2E:-0}" = 1 ]; then
    run e2e env MNIST_DATA_DIR="$DATA" MNIST_REQUIRE_E2E=1 python -m pytest tests/e2e -x -q && note "e2e: $(counts e2e)"
  fi
  echo "$line" | tee "$out/result.txt"
  [ "${KEEP:-0}" = 1 ] || rm -rf "$venv" "$clone" "$WORK/runs-$ver"
done
exit $fail
