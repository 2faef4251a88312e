"""Classroom mode through AppTest: the access gate, signing in with a display name (kept across a
reload, a tampered token refused, a taken name refused), ownership of runs (no buttons for another
person's run, and the core refuses a crafted call), the teacher's page, the class set and the
leaderboard. A laptop with nothing configured has no sign-in at all."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mnist_core import classset, identity, manage, runs
from mnist_core.config import preset_config
from mnist_core.identity import Actor

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


@pytest.fixture
def env(runs_root, data_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(data_dir))
    for k in ("MNIST_CLASSROOM", "MNIST_CLASS_CODE", "MNIST_TEACHER_PASSWORD", "MNIST_ACCESS_CODE"):
        monkeypatch.delenv(k, raising=False)
    return runs_root


def app(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query or {})
    return at.run()


def texts(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown) + " ".join(t.value for t in at.title)


def sign_in(at: AppTest, name: str, code: str | None = None) -> AppTest:
    at.text_input(key="signin_name").input(name)
    if code is not None:
        at.text_input(key="signin_code").input(code)
    at.button[0].click().run()  # the form's submit button
    return at


def test_a_laptop_has_no_sign_in(env):
    at = app()
    assert not at.exception
    assert not [t for t in at.text_input if t.key == "signin_name"]
    assert "mnist-studio" in texts(at) and "Where to go" in " ".join(s.value for s in at.subheader)


def test_access_code_gate(env, monkeypatch):
    monkeypatch.setenv("MNIST_ACCESS_CODE", "open-sesame")
    at = app()
    assert [t.key for t in at.text_input] == ["gate_code"]  # the prompt and nothing else
    assert not at.sidebar.selectbox and not at.subheader
    at.text_input(key="gate_code").input("wrong")
    t0 = time.monotonic()
    at.button[0].click().run()
    assert time.monotonic() - t0 >= 0.4  # a wrong code is answered slowly
    assert any("not the access code" in e.value for e in at.error) and not at.subheader
    at.text_input(key="gate_code").input("open-sesame")
    at.button[0].click().run()
    assert not at.exception and "Where to go" in " ".join(s.value for s in at.subheader)
    # The pass is kept in the address: a reload gets straight in; a forged pass does not.
    again = app({"pass": at.query_params["pass"]})
    assert "Where to go" in " ".join(s.value for s in again.subheader)
    forged = app({"pass": "0" * 32})
    assert [t.key for t in forged.text_input] == ["gate_code"]


def test_sign_in_reload_tamper_and_taken_names(env, monkeypatch):
    monkeypatch.setenv("MNIST_CLASS_CODE", "4b")
    at = app()
    assert [t.key for t in at.text_input] == ["signin_name", "signin_code"] and not at.subheader
    sign_in(at, "Ada", "wrong")
    assert any("not this class's code" in e.value for e in at.error)
    sign_in(at, "Ada", "4b")
    assert not at.exception and "Signed in as **Ada**" in " ".join(c.value for c in at.sidebar.caption)
    token = at.query_params["id"]
    assert identity.verify_token(token) == "Ada"
    # A reload (a fresh session with the same address) is Ada again, without a prompt.
    reloaded = app({"id": token})
    assert not [t for t in reloaded.text_input if t.key == "signin_name"]
    assert "Signed in as **Ada**" in " ".join(c.value for c in reloaded.sidebar.caption)
    # A tampered token (another name, the same signature) is refused.
    enc, nonce, sig = token.split(".")
    forged = identity._b64("Bob") + "." + nonce + "." + sig
    bad = app({"id": forged})
    assert any("not valid" in e.value for e in bad.error) and [t.key for t in bad.text_input][0] == "signin_name"
    # Someone else asking for "ada" is refused; the teacher releases it, and then it can be taken again.
    other = sign_in(app(), " ada ", "4b")
    assert any("already taken" in e.value for e in other.error)
    with pytest.raises(identity.IdentityError):
        identity.release_name("Ada", Actor("Bob"))
    identity.release_name("Ada", Actor("Teach", teacher=True))
    assert any("released" in e.value for e in app({"id": token}).error)  # Ada's old link stops working
    assert not sign_in(app(), "ada", "4b").error


def _finished_run(root: Path, name: str, owner: str | None) -> Path:
    d = runs.create_run(preset_config("classic", epochs=1), name, root=root, owner=owner, pid=None)
    runs.set_status(d, "finished", pid=None)
    runs.RunFolder(d).model.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an (empty) zip archive: listed as finished
    return d


def test_only_the_owner_or_the_teacher_manage_a_run(env, monkeypatch):
    monkeypatch.setenv("MNIST_CLASSROOM", "1")
    monkeypatch.setenv("MNIST_TEACHER_PASSWORD", "chalk")
    ada = _finished_run(env, "ada-run", "Ada")
    _finished_run(env, "bob-run", "Bob")
    bob = sign_in(app(), "Bob")
    bob.switch_page("app_pages/train.py").run()
    assert not bob.exception
    assert bob.selectbox(key="tr_del_pick").options == ["bob-run"]  # Ada's run is not offered
    assert bob.selectbox(key="tr_ren_pick").options == ["bob-run"]
    # A crafted call to the core is refused just the same (a forged widget event, the CLI, another replica).
    for op in (lambda: manage.delete(Actor("Bob"), ada), lambda: manage.stop(Actor("Bob"), ada),
               lambda: manage.rename(Actor("Bob"), ada, "mine-now")):
        with pytest.raises(runs.RunError, match="Ada's run: only its owner or the teacher"):
            op()
    assert ada.exists()
    # The teacher unlocks the Teacher page and may delete it.
    bob.sidebar.text_input(key="teacher_pw").input("chalk")
    bob.sidebar.button(key="teacher_go").click().run()
    assert "Bob (teacher)" in " ".join(c.value for c in bob.sidebar.caption)
    bob.switch_page("app_pages/teacher.py").run()
    assert not bob.exception and "Runs by person" in [s.value for s in bob.subheader]
    manage.rename(Actor("Bob", teacher=True), ada, "ada-run-2")
    assert (env / "ada-run-2").is_dir() and runs.read_status(env / "ada-run-2")["owner"] == "Ada"


def test_the_teacher_page_is_locked_without_the_password(env, monkeypatch):
    monkeypatch.setenv("MNIST_TEACHER_PASSWORD", "chalk")
    at = sign_in(app(), "Cy")
    at.switch_page("app_pages/teacher.py").run()
    assert any("teacher's" in i.value for i in at.info) and not at.subheader
    at.sidebar.text_input(key="teacher_pw").input("nope")
    at.sidebar.button(key="teacher_go").click().run()
    assert any("not the teacher password" in e.value for e in at.sidebar.error)


def test_ten_contributions_at_once_are_each_stored_once(env, tiny):
    """Ten sessions add drawings at the same moment: every one is stored once, with its own label and
    contributor, and none is lost or mixed up."""
    go = threading.Barrier(10)
    errors = []

    def add(i: int) -> None:
        go.wait()
        try:
            for k in range(3):
                classset.add(tiny.x_test[i * 3 + k] / 255.0, int(tiny.y_test[i * 3 + k]), f"student{i}")
        except Exception as e:  # pragma: no cover - the assertion below shows it
            errors.append(e)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    cs = classset.load()
    assert len(cs) == 30 and len(set(cs.ids)) == 30
    got = sorted(zip(cs.contributors, cs.labels.tolist(), strict=True))
    want = sorted((f"student{i}", int(tiny.y_test[i * 3 + k])) for i in range(10) for k in range(3))
    assert got == want
    # The model inputs are the drawings given (rounded to 8 bits).
    for who, img in zip(cs.contributors, cs.images, strict=True):
        i = int(who.removeprefix("student"))
        assert any(np.abs(img.astype(int) - tiny.x_test[i * 3 + k].astype(int)).max() <= 1 for k in range(3))
    ds = classset.as_dataset()
    assert len(ds.y_train) + len(ds.y_test) == 30 and 0 < len(ds.y_test) < 30
