"""Who may use Key Health: Streamlit's OIDC sign-in (`st.login`) plus an allow-list, read from secrets.

Without an `[auth]` section the app runs open (and says so on every page). With one, everyone must sign in,
and only the allowed email addresses or domains get past the sign-in page. An `[auth]` section with an
empty allow-list lets nobody in: a misconfiguration must fail closed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AccessPolicy:
    enabled: bool  # an [auth] section is configured: sign-in required
    allowed_domains: tuple[str, ...] = ()
    allowed_emails: tuple[str, ...] = ()

    def allows(self, email: str | None) -> bool:
        if not self.enabled:
            return True
        if not email or "@" not in email:
            return False
        email = email.strip().lower()
        domain = email.rsplit("@", 1)[1]
        return email in self.allowed_emails or domain in self.allowed_domains

    def refusal(self, email: str | None) -> str:
        """One sentence for a signed-in person who is not on the allow-list."""
        if not self.allowed_domains and not self.allowed_emails:
            return (
                "Sign-in is configured but nobody is allowed in yet; an administrator must set allowed_domains or "
                "allowed_emails under [keyhealth] in .streamlit/secrets.toml."
            )
        return (
            f"{email or 'This account'} is not allowed to use Key Health; sign in with your Pointai account, "
            "or ask an administrator to add you to the allow-list."
        )


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    try:
        return tuple(str(v).strip().lower().lstrip("@") for v in value or () if str(v).strip())
    except TypeError:
        return ()


def policy_from_secrets(secrets: Mapping[str, Any]) -> AccessPolicy:
    """`[auth]` (Streamlit's own OIDC settings) switches sign-in on; `[keyhealth]` holds the allow-list."""
    auth = secrets.get("auth") if hasattr(secrets, "get") else None
    if not auth:
        return AccessPolicy(enabled=False)
    kh = secrets.get("keyhealth") or {}
    return AccessPolicy(
        enabled=True,
        allowed_domains=_strings(kh.get("allowed_domains", ())),
        allowed_emails=_strings(kh.get("allowed_emails", ())),
    )


def identity(user: Mapping[str, Any] | None) -> str:
    """Who is acting, for the audit trail: the signed-in email, else "anonymous"."""
    try:
        if user is None or user.get("is_logged_in") is False:
            return "anonymous"
        return str(user.get("email") or "anonymous")
    except Exception:  # noqa: BLE001 - st.user can refuse access outside a script run; the audit says "anonymous"
        return "anonymous"
