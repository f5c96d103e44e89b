"""Who is asking and what they may see: identities, roles, and the scope they impose.

An :class:`Identity` comes from wherever the sign-in mode says (the proxy's headers,
Streamlit's OIDC ``st.user``, the OS user for the command line); :func:`resolve` maps it
through the config's users, groups and roles to an :class:`Access`, whose
:attr:`Access.scope` every query is asked under. Nothing here imports Streamlit.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from analytics_core.audit import AuditEvent
from analytics_core.config import Auth, Role
from analytics_core.context import Scope
from analytics_core.filters import Filters, InputError, clip
from analytics_core.pages import APP_PAGES

# A header or claim longer than this, or holding control characters, is not an identity
# a proxy or provider would send: it is refused rather than stored in the audit log.
MAX_IDENTITY_LENGTH = 256
OPEN_ROLE = "admin"  # sign-in off: the local demo, everything visible


class NotSignedIn(Exception):
    """No identity could be read; the message says what is missing, for the page."""


class AccessDenied(InputError):
    """The caller may not do this; the message names what and why."""


@dataclass(frozen=True)
class Identity:
    user: str
    email: str | None = None
    groups: tuple[str, ...] = ()
    client: str | None = None  # the client's address, as the proxy saw it
    via: str = "none"  # none, proxy, oidc or cli


@dataclass(frozen=True)
class Access:
    """A signed-in caller's rights; ``role`` None: known to nobody, so nothing visible."""

    identity: Identity
    role: str | None
    pages: tuple[str, ...]
    exports: tuple[str, ...]
    scope: Scope

    def event(self, action: str, **fields: object) -> AuditEvent:
        """An audit event of this caller doing ``action``."""
        who = self.identity
        return AuditEvent(who.user, self.role, action, client=who.client, **fields)  # type: ignore[arg-type]

    def may_view(self, page: str) -> bool:
        return page in self.pages

    def may_export(self, fmt: str) -> bool:
        return fmt in self.exports

    def check_page(self, page: str) -> None:
        if not self.may_view(page):
            raise AccessDenied(
                f"the {page} page is not open to {self._who()}"
                + (f" (pages: {', '.join(self.pages)})" if self.pages else "")
            )

    def check_export(self, fmt: str) -> None:
        if not self.may_export(fmt):
            allowed = ", ".join(self.exports) or "none"
            raise AccessDenied(f"{fmt} exports are not open to {self._who()} (formats: {allowed})")

    def check_filters(self, filters: Filters) -> None:
        """A tenant filter outside the scope is refused by name, never widened or emptied."""
        allowed = self.scope.tenants
        if allowed is None:
            return
        outside = [t for t in filters.tenants if t not in allowed]
        if outside:
            shown = ", ".join(repr(clip(t)) for t in outside[:5])
            raise AccessDenied(f"tenant {shown} is outside what {self._who()} may see")

    def _who(self) -> str:
        role = f"role {self.role}" if self.role else "no role"
        return f"{clip(self.identity.user)} ({role})"


def is_loopback(address: str | None) -> bool:
    """Whether the server listens on loopback only (unset: Streamlit binds every interface)."""
    if not address:
        return False
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def open_refused(auth: Auth, address: str | None) -> str | None:
    """Why sign-in mode ``none`` may not serve on ``address``; None when it may."""
    if auth.mode != "none" or auth.allow_open or is_loopback(address):
        return None
    return (
        f"Sign-in is off (auth.mode: none) and the server listens on "
        f"{address or 'every interface'}: anyone who reaches it would see every tenant. "
        "Listen on 127.0.0.1, or set auth.mode to proxy or oidc; auth.allow_open: true "
        "serves it open on purpose."
    )


def resolve(identity: Identity, auth: Auth) -> Access:
    """The identity's rights: the role its user name or e-mail is mapped to, else the
    roles of its groups together, else the default role, else none at all."""
    if auth.mode == "none" and identity.via == "none":
        return _access(identity, OPEN_ROLE, [auth.roles[OPEN_ROLE]])
    # E-mail addresses are matched without regard to case (providers differ).
    users = {_key(k): v for k, v in auth.users.items()}
    for name in (identity.user, identity.email):
        if name and _key(name) in users:
            role = users[_key(name)]
            return _access(identity, role, [auth.roles[role]])
    grouped = sorted({auth.groups[g] for g in identity.groups if g in auth.groups})
    if grouped:
        return _access(identity, "+".join(grouped), [auth.roles[r] for r in grouped])
    if auth.default_role:
        return _access(identity, auth.default_role, [auth.roles[auth.default_role]])
    return Access(identity, None, (), (), Scope(()))


def _key(name: str) -> str:
    return name.casefold() if "@" in name else name


def _access(identity: Identity, name: str, roles: list[Role]) -> Access:
    """One role's rights, or the union of several (a user in two groups has both)."""
    pages = tuple(p for p in APP_PAGES if any(p in r.pages for r in roles))
    exports = tuple(dict.fromkeys(f for r in roles for f in r.exports))
    if any(r.tenants is None for r in roles):
        scope = Scope()
    else:
        scope = Scope(tuple(t for r in roles for t in r.tenants or ()))
    return Access(identity, name, pages, exports, scope)


def _text(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_IDENTITY_LENGTH or any(
        unicodedata.category(c).startswith("C") for c in value
    ):
        raise NotSignedIn(f"the {what} is malformed (control characters or over "
                          f"{MAX_IDENTITY_LENGTH} characters)")  # fmt: skip
    return value


def _one(headers: Mapping[str, str], name: str) -> str | None:
    """The single value of header ``name``. Two lines of it mean something besides the
    proxy wrote one (a proxy that appends rather than replaces): not an identity."""
    lines = headers.get_all(name) if hasattr(headers, "get_all") else [headers.get(name)]
    lines = [line for line in lines if line is not None]
    if len(lines) > 1:
        raise NotSignedIn(f"the {name} header came {len(lines)} times; a proxy sets it once")
    return _text(lines[0] if lines else None, f"{name} header")


def _client_address(forwarded: str | None) -> str | None:
    """The last ``X-Forwarded-For`` entry (the address the proxy itself saw; entries
    before it are the client's own claims), when it is an IP address."""
    if not forwarded:
        return None
    last = forwarded.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return None


def from_headers(headers: Mapping[str, str], auth: Auth) -> Identity:
    """The identity an authenticating proxy vouches for, from its headers (``headers``
    looked up case-insensitively, as Streamlit's are)."""
    names = auth.proxy
    user = _one(headers, names.user)
    email = _one(headers, names.email)
    if not (user or email):
        raise NotSignedIn(
            f"no {names.user} or {names.email} header: the request did not come through "
            "the signing-in proxy"
        )
    groups_text = _one(headers, names.groups) or ""
    forwarded = headers.get_all(names.client) if hasattr(headers, "get_all") else None
    joined = ",".join(forwarded) if forwarded else headers.get(names.client)
    return Identity(
        user=user or email or "",
        email=email,
        groups=tuple(g.strip() for g in groups_text.split(",") if g.strip()),
        client=_client_address(_text(joined, f"{names.client} header")),
        via="proxy",
    )


def from_oidc(user: Mapping[str, object]) -> Identity:
    """The identity of a user signed in with ``st.login`` (its claims as a mapping). The
    e-mail names them unless the provider says it is unverified (anyone could register
    someone else's address); else the stable subject ``sub``."""
    if not user.get("is_logged_in"):
        raise NotSignedIn("not signed in")
    email = _text(_claim(user, "email"), "e-mail claim")
    if email is not None and user.get("email_verified") is False:
        email = None
    subject = _text(_claim(user, "sub"), "subject claim")
    name = email or subject
    if not name:
        raise NotSignedIn("the identity provider sent neither a verified e-mail nor a subject")
    claimed = user.get("groups")
    listed = claimed if isinstance(claimed, list | tuple) else ()
    groups = tuple(g for g in listed if isinstance(g, str))
    return Identity(user=name, email=email, groups=groups, via="oidc")


def _claim(user: Mapping[str, object], key: str) -> str | None:
    value = user.get(key)
    return value if isinstance(value, str) else None


def open_identity() -> Identity:
    """Sign-in off: the local demo's one anonymous user."""
    return Identity(user="anonymous", via="none")


def cli_identity(auth: Auth) -> Identity:
    """The command line's caller: the OS account running it (not $USER or $LOGNAME,
    which anyone can set), mapped like any other user. With sign-in off the command line
    is as open as the app."""
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # an account without a passwd entry (some containers)
        user = f"uid {os.geteuid()}"
    return Identity(user=user, via="none" if auth.mode == "none" else "cli")
