"""Who is who on a shared server, and who may do what to a run.

Three modes, from the environment (`settings()`): a laptop with nothing configured has one local user
and no sign-in; a classroom (`MNIST_CLASSROOM=1`, or a class code `MNIST_CLASS_CODE`, or a teacher
password `MNIST_TEACHER_PASSWORD`) asks each session for a display name; a server with Streamlit's own
authentication uses the signed-in account (the UI passes its e-mail in). A classroom name is claimed
once (a file created atomically in `<runs root>/.classroom/names/`, so two sessions cannot both get
it); the session gets a token `name.nonce.signature`, an HMAC-SHA256 of the name and the claim's nonce
with a secret created once in the runs folder (mode 0600). A reload presents the token again; a forged
or tampered one, or one for a name the teacher has released since, is refused. `MNIST_ACCESS_CODE`
gates the whole app (constant-time compare, failed attempts slowed down per server).

The rules live here so that every entry point obeys them: `may_manage(actor, run)` (stop, delete,
rename: the owner or the teacher; runs without an owner, such as old runs and `pretrained`, are shared:
only the teacher manages them; on a laptop the one local user manages everything).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import runs

CLASSROOM_DIR = ".classroom"  # inside the runs root: a dot folder, never listed as a run
MAX_DISPLAY_NAME = 40


class IdentityError(ValueError):
    """A sign-in that cannot be accepted (bad code, taken name, tampered token), explained."""


@dataclass(frozen=True)
class Settings:
    classroom: bool  # sessions sign in with a display name
    class_code: str | None
    access_code: str | None
    teacher_password: str | None
    teacher_emails: tuple[str, ...]  # with Streamlit authentication: these accounts are teachers


def settings() -> Settings:
    env = os.environ
    class_code = env.get("MNIST_CLASS_CODE") or None
    teacher = env.get("MNIST_TEACHER_PASSWORD") or None
    return Settings(
        classroom=env.get("MNIST_CLASSROOM", "").lower() in ("1", "true", "yes") or bool(class_code or teacher),
        class_code=class_code, access_code=env.get("MNIST_ACCESS_CODE") or None, teacher_password=teacher,
        teacher_emails=tuple(e.strip().lower() for e in env.get("MNIST_TEACHERS", "").split(",") if e.strip()))


@dataclass(frozen=True)
class Actor:
    """Who is asking: a named person (classroom or signed-in account), or the one local user."""

    name: str | None  # None: the local user of a laptop (no identities configured)
    teacher: bool = False

    @property
    def local(self) -> bool:
        return self.name is None

    @property
    def label(self) -> str:
        return "you" if self.local else self.name + (" (teacher)" if self.teacher else "")


LOCAL = Actor(None)


def classroom_dir(root: Path | None = None) -> Path:
    return (Path(root) if root else runs.runs_root()) / CLASSROOM_DIR


# --- the server's secret ----------------------------------------------------------------------------
_secret_lock = threading.Lock()


def secret(root: Path | None = None) -> bytes:
    """The server's signing key: 32 random bytes created once in the runs folder, readable only by the
    server's user. Several app processes sharing the runs folder share it (the first one creates it)."""
    path = classroom_dir(root) / "secret"
    with _secret_lock:
        try:
            return bytes.fromhex(path.read_text().strip())
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it a moment ago
            return bytes.fromhex(path.read_text().strip())
        with os.fdopen(fd, "w") as f:
            f.write(key.hex())
            f.flush()
            os.fsync(f.fileno())
        return key


def _sign(message: str, root: Path | None = None) -> str:
    return hmac.new(secret(root), message.encode(), hashlib.sha256).hexdigest()[:32]


# --- display names -----------------------------------------------------------------------------------
def clean_name(name: str) -> str:
    """A display name as shown: trimmed, inner spaces single, printable characters, at most 40."""
    if not isinstance(name, str):
        raise IdentityError("the name must be text")
    text = " ".join(unicodedata.normalize("NFC", name).split())
    if not text:
        raise IdentityError("please enter a name")
    if len(text) > MAX_DISPLAY_NAME:
        raise IdentityError(f"the name is too long ({len(text)} characters; at most {MAX_DISPLAY_NAME})")
    if any(not ch.isprintable() for ch in text):
        raise IdentityError("the name has characters that cannot be shown")
    return text


def _name_file(name: str, root: Path | None) -> Path:
    # Two names that differ only in case or accents-composition are the same person.
    key = hashlib.sha256(clean_name(name).casefold().encode()).hexdigest()[:24]
    return classroom_dir(root) / "names" / f"{key}.json"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def claim_name(name: str, class_code: str | None = None, root: Path | None = None) -> tuple[str, str]:
    """Claim a display name for a new session: returns (the name as shown, its token). Raises
    IdentityError for a wrong class code or a name someone else holds."""
    cfg = settings()
    if cfg.class_code is not None and not hmac.compare_digest((class_code or "").encode(), cfg.class_code.encode()):
        _slow_down()
        raise IdentityError("that is not this class's code")
    shown = clean_name(name)
    path = _name_file(shown, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    nonce = secrets.token_hex(8)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise IdentityError(f"the name {shown!r} is already taken; choose another, or ask your teacher to "
                            "release it if it is yours") from None
    with os.fdopen(fd, "w") as f:
        json.dump({"name": shown, "nonce": nonce, "claimed": time.time()}, f)
    return shown, f"{_b64(shown)}.{nonce}.{_sign(shown + '|' + nonce, root)}"


def verify_token(token: str, root: Path | None = None) -> str:
    """The display name a token proves, or IdentityError (forged, tampered, or released since)."""
    try:
        enc, nonce, sig = token.split(".")
        name = clean_name(_unb64(enc))
    except (ValueError, UnicodeDecodeError, AttributeError) as e:
        raise IdentityError("this sign-in link is not valid") from e
    if not hmac.compare_digest(sig, _sign(name + "|" + nonce, root)):
        raise IdentityError("this sign-in link is not valid (its signature does not match)")
    try:
        held = json.loads(_name_file(name, root).read_text())
    except (OSError, ValueError):
        held = {}
    if held.get("nonce") != nonce:
        raise IdentityError(f"the name {name!r} has been released by the teacher; sign in again")
    return name


def names(root: Path | None = None) -> list[dict[str, Any]]:
    """Every claimed name with when it was claimed (for the teacher)."""
    out = []
    for p in sorted((classroom_dir(root) / "names").glob("*.json")):
        try:
            d = json.loads(p.read_text())
            out.append({"name": d["name"], "claimed": d.get("claimed")})
        except (OSError, ValueError, KeyError):
            continue
    return sorted(out, key=lambda d: d["name"].casefold())


def release_name(name: str, actor: Actor, root: Path | None = None) -> None:
    """Free a name (its token stops working): the teacher's job."""
    if not actor.teacher:
        raise IdentityError("only the teacher can release a name")
    _name_file(name, root).unlink(missing_ok=True)


# --- the teacher and the access code -----------------------------------------------------------------
_failures = {"n": 0, "last": 0.0}
_fail_lock = threading.Lock()


def _slow_down() -> None:
    """Each wrong code on this server makes the next answer wait longer (up to 8 s): guessing a code
    from many sessions at once is slowed as much as from one."""
    with _fail_lock:
        if time.time() - _failures["last"] > 600:
            _failures["n"] = 0
        _failures["n"] += 1
        _failures["last"] = time.time()
        wait = min(8.0, 0.5 * 2 ** (_failures["n"] - 1))
    time.sleep(wait)


def check_teacher_password(password: str) -> None:
    cfg = settings()
    if cfg.teacher_password is None:
        raise IdentityError("this server has no teacher password (MNIST_TEACHER_PASSWORD)")
    if not hmac.compare_digest((password or "").encode(), cfg.teacher_password.encode()):
        _slow_down()
        raise IdentityError("that is not the teacher password")


def teacher_pass(name: str, root: Path | None = None) -> str:
    """Proof that the session signed in as `name` gave the teacher password (valid until it changes)."""
    return _sign(f"teacher|{name}|{settings().teacher_password}", root)


def valid_teacher_pass(name: str, value: str | None, root: Path | None = None) -> bool:
    return bool(settings().teacher_password) and bool(value) and hmac.compare_digest(
        value.encode(), teacher_pass(name, root).encode())


def check_access_code(code: str) -> str:
    """A wrong code raises (after a delay); the right one returns a pass to keep in the address, valid
    until the code changes."""
    cfg = settings()
    if cfg.access_code is None:
        return ""
    if not hmac.compare_digest((code or "").strip().encode(), cfg.access_code.encode()):
        _slow_down()
        raise IdentityError("that is not the access code")
    return access_pass()


def access_pass(root: Path | None = None) -> str:
    cfg = settings()
    return _sign("access|" + (cfg.access_code or ""), root)


def valid_access_pass(value: str | None, root: Path | None = None) -> bool:
    return settings().access_code is None or (
        bool(value) and hmac.compare_digest(value.encode(), access_pass(root).encode()))


def account_actor(email: str | None, name: str | None) -> Actor:
    """The actor for an account signed in through Streamlit's authentication."""
    who = (email or name or "").strip()
    if not who:
        raise IdentityError("the signed-in account has neither an e-mail nor a name")
    return Actor(who, teacher=who.lower() in settings().teacher_emails)


# --- the rule ------------------------------------------------------------------------------------------
def may_manage(actor: Actor, run: runs.RunInfo) -> bool:
    """Whether `actor` may stop, delete or rename `run`: the local user of a laptop always; in a class
    the teacher, or the run's owner (runs without an owner are shared: the teacher's to manage)."""
    if actor.local or actor.teacher:
        return True
    return run.owner is not None and run.owner == actor.name


def require_manage(actor: Actor, run: runs.RunInfo, what: str) -> None:
    if not may_manage(actor, run):
        whose = f"{run.owner}'s" if run.owner else "a shared"
        raise runs.RunError(f"{run.name} is {whose} run: only its owner or the teacher may {what} it")


def owner_for_new_run(actor: Actor) -> str | None:
    return actor.name
