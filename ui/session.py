"""Who this browser session is, and the gates in front of the app (the rules are in mnist_core.identity).

`require_access()` shows only the access-code prompt until the code is given (`MNIST_ACCESS_CODE`);
`require_identity()` signs a session in when the server is a classroom (a display name, and the class
code if one is set) or uses Streamlit's own authentication (`st.login`, an `[auth]` section in
secrets.toml); on a laptop it does nothing. Both are called by the router before any page is drawn.

Where the proof lives: in the address, as query parameters (`?id=<signed token>`, `&pass=` for the
access code, `&t=` for the teacher). A reload keeps them, so a student stays signed in; the router
writes them back on every run, because switching pages would otherwise drop them. The flip side: the
address bar *is* the sign-in, so a student who shares it shares their identity. The sidebar offers the
plain address to share instead.
"""

from __future__ import annotations

import streamlit as st

from mnist_core import identity
from mnist_core.identity import Actor, IdentityError

ss = st.session_state
ACTOR = "_actor"  # the session's Actor, once signed in
TOKEN, PASS, TEACHER = "id", "pass", "t"  # query parameters
ERR = "_signin_error"


def _auth_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml at all (Streamlit raises its own not-found error type)
        return False


def _keep(param: str, value: str | None) -> None:
    if value and st.query_params.get(param) != value:
        st.query_params[param] = value


def actor() -> Actor:
    """The Actor of this session (the local user when no identities are configured)."""
    return ss.get(ACTOR) or identity.LOCAL


# --- the access code ---------------------------------------------------------------------------------
def _on_access() -> None:
    try:
        ss[PASS] = identity.check_access_code(ss.get("gate_code", ""))
        ss.pop(ERR, None)
    except IdentityError as e:
        ss[ERR] = str(e)


def require_access() -> None:
    """Nothing but the prompt until this session has given the access code (or holds its pass)."""
    if identity.settings().access_code is None:
        return
    given = ss.get(PASS) or st.query_params.get(PASS)
    if identity.valid_access_pass(given):
        ss[PASS] = given
        _keep(PASS, given)
        return
    st.title("mnist-studio")
    st.markdown("This server is protected. Enter the **access code** you were given with its address.")
    with st.form("gate", border=True):
        st.text_input("Access code", type="password", key="gate_code")
        st.form_submit_button("Enter", type="primary", on_click=_on_access)
    if ERR in ss:
        st.error(ss[ERR])
    st.stop()


# --- signing in --------------------------------------------------------------------------------------
def _on_sign_in() -> None:
    try:
        name, token = identity.claim_name(ss.get("signin_name", ""), ss.get("signin_code"))
        ss[TOKEN], ss[ACTOR] = token, Actor(name)
        ss.pop(ERR, None)
    except IdentityError as e:
        ss[ERR] = str(e)


def require_identity() -> Actor:
    """This session's Actor; a sign-in form (and stop) for a classroom session that has none yet."""
    cfg = identity.settings()
    if _auth_configured():
        if not st.user.is_logged_in:
            st.title("mnist-studio")
            st.markdown("Sign in to use this app.")
            st.button("Sign in", type="primary", on_click=st.login, key="auth_login")
            st.stop()
        ss[ACTOR] = identity.account_actor(st.user.get("email"), st.user.get("name"))
        return ss[ACTOR]
    if not cfg.classroom:
        return identity.LOCAL
    token = ss.get(TOKEN) or st.query_params.get(TOKEN)
    if token:
        try:
            name = identity.verify_token(token)
            teacher = identity.valid_teacher_pass(name, st.query_params.get(TEACHER, ss.get(TEACHER)))
            ss[TOKEN], ss[ACTOR] = token, Actor(name, teacher=teacher)
            _keep(TOKEN, token)
            if teacher:
                ss[TEACHER] = identity.teacher_pass(name)
                _keep(TEACHER, ss[TEACHER])
            return ss[ACTOR]
        except IdentityError as e:
            ss[ERR] = str(e)
            ss.pop(TOKEN, None)
            st.query_params.pop(TOKEN, None)
    st.title("mnist-studio")
    st.markdown("This is a class server: tell it **who you are**. Your name is shown next to the runs you "
                "train and the drawings you add, and only you (and your teacher) can stop or delete your runs.")
    with st.form("signin", border=True):
        st.text_input("Your name", key="signin_name", max_chars=identity.MAX_DISPLAY_NAME)
        if cfg.class_code is not None:
            st.text_input("Class code", type="password", key="signin_code",
                          help="Your teacher gives it to the class.")
        st.form_submit_button("Sign in", type="primary", on_click=_on_sign_in)
    if ERR in ss:
        st.error(ss[ERR])
    st.caption("You stay signed in as long as you keep this page's address (a reload keeps it). Don't share the "
               "address bar's link: it carries your sign-in. To give someone the app, share the plain address.")
    st.stop()


def _on_teacher() -> None:
    a = actor()
    try:
        identity.check_teacher_password(ss.get("teacher_pw", ""))
    except IdentityError as e:
        ss["teacher_err"] = str(e)
        return
    ss.pop("teacher_err", None)
    ss[ACTOR] = Actor(a.name, teacher=True)
    ss[TEACHER] = identity.teacher_pass(a.name or "")


def sidebar() -> None:
    """Who is signed in, and the teacher's sign-in (drawn in the sidebar by the router)."""
    a = actor()
    cfg = identity.settings()
    if a.local:
        return
    st.caption(f"Signed in as **{a.label}**")
    if _auth_configured():
        st.button("Sign out", key="auth_logout", on_click=st.logout)
        return
    if not a.teacher and cfg.teacher_password:
        with st.popover("Teacher", icon=":material/school:"):
            st.text_input("Teacher password", type="password", key="teacher_pw")
            st.button("Unlock the Teacher page", key="teacher_go", on_click=_on_teacher)
            if "teacher_err" in ss:
                st.error(ss["teacher_err"])
    st.caption("Keep this page's address to stay signed in; share the plain address, not this one.")
