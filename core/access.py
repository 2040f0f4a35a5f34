"""Who may use Key Health: Streamlit's OIDC sign-in (`st.login`) plus an allow-list, read from secrets.

Sign-in is closed unless it is complete. The decision is made on the parsed secrets, case-insensitively:

- any auth-like section (`[auth]`, `[Auth]`, `[auth.google]`, even one whose keys are all commented out) or any
  `[keyhealth]` allow-list means sign-in is wanted;
- wanted but incomplete (a required `[auth]` key missing or empty, the section spelled other than `[auth]`, no
  allow-list) closes every page with one sentence naming what is missing (`AccessPolicy.problem`);
- only secrets with neither run open, and every page says so.

An identity whose `email_verified` claim is false is refused; so is one without the claim when the provider
says it sends it (its metadata lists `email_verified` in `claims_supported`). No Streamlit in here.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# What Streamlit's st.login() (the default provider) needs under [auth], spelled exactly so: Streamlit reads
# the section and its keys case-sensitively.
AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
ALLOW_KEYS = ("allowed_domains", "allowed_emails")
SECRETS_FILE = ".streamlit/secrets.toml"


@dataclass(frozen=True)
class AccessPolicy:
    enabled: bool  # sign-in is wanted (an auth-like section or an allow-list exists)
    allowed_domains: tuple[str, ...] = ()
    allowed_emails: tuple[str, ...] = ()
    problem: str | None = None  # wanted but incomplete: every page is closed with this sentence

    @property
    def closed(self) -> bool:
        return self.problem is not None

    def allows(self, email: str | None) -> bool:
        if self.closed:
            return False
        if not self.enabled:
            return True
        if not email or "@" not in email:
            return False
        email = email.strip().lower()
        domain = email.rsplit("@", 1)[1]
        return email in self.allowed_emails or domain in self.allowed_domains

    def refusal(self, email: str | None) -> str:
        """One sentence for a signed-in person who is not on the allow-list."""
        if self.problem:
            return self.problem
        return (
            f"{email or 'This account'} is not allowed to use Key Health; sign in with your Pointai account, "
            "or ask an administrator to add you to the allow-list."
        )


UNVERIFIED = (
    "This account's email address is not verified by the identity provider, so Key Health cannot trust it; "
    "verify the address with your identity provider, then sign in again."
)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    try:
        return tuple(str(v).strip().lower().lstrip("@") for v in value or () if str(v).strip())
    except TypeError:
        return ()


def _is_auth_like(name: Any) -> bool:
    n = str(name).strip().lower()
    return n == "auth" or n.startswith("auth.")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _keyhealth(secrets: Mapping[str, Any]) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    """(an allow-list key exists, domains, emails), from any [keyhealth] section, keys in any case."""
    present = False
    domains: list[str] = []
    emails: list[str] = []
    for name, section in secrets.items():
        if str(name).strip().lower() != "keyhealth":
            continue
        for key, value in _mapping(section).items():
            k = str(key).strip().lower()
            if k == "allowed_domains":
                present, domains = True, [*domains, *_strings(value)]
            elif k == "allowed_emails":
                present, emails = True, [*emails, *_strings(value)]
    return present, tuple(dict.fromkeys(domains)), tuple(dict.fromkeys(emails))


def _missing_auth(secrets: Mapping[str, Any], auth_names: list[str]) -> str | None:
    """What the auth-like sections lack for st.login(), as the end of a sentence, or None when complete."""
    if "auth" not in auth_names:
        spelled = ", ".join(f"[{n}]" for n in auth_names)
        return (f"the sign-in section is spelled {spelled}, but Streamlit reads only [auth] in lower case "
                "(rename it, and put its settings in it)")
    if len(auth_names) > 1:
        others = ", ".join(f"[{n}]" for n in auth_names if n != "auth")
        return f"there is more than one sign-in section ([auth] and {others}); keep only [auth]"
    auth = _mapping(secrets.get("auth"))
    missing = [k for k in AUTH_KEYS if not (isinstance(auth.get(k), str) and auth.get(k, "").strip())]
    if missing:
        return f"[auth] lacks {', '.join(missing)}"
    return None


def policy_from_secrets(secrets: Mapping[str, Any]) -> AccessPolicy:
    """The access policy the parsed secrets ask for (see the module docstring)."""
    if not isinstance(secrets, Mapping):
        return AccessPolicy(enabled=True, problem=(
            f"Key Health's settings ({SECRETS_FILE}) could not be read, so every page stays closed; an "
            "administrator must fix that file."))
    auth_names = [str(n) for n in secrets if _is_auth_like(n)]
    # "[auth.google]" parses as auth -> {google: {...}}; a quoted dotted name stays one key: both count
    listed, domains, emails = _keyhealth(secrets)
    if not auth_names and not listed:
        return AccessPolicy(enabled=False)
    lacking = []
    auth_gap = _missing_auth(secrets, auth_names) if auth_names else "there is no [auth] section"
    if auth_gap:
        lacking.append(auth_gap)
    if not domains and not emails:
        lacking.append("[keyhealth] has no allowed_domains or allowed_emails, so nobody could be let in")
    problem = None
    if lacking:
        problem = (f"Sign-in is configured but incomplete, so every page stays closed: {'; '.join(lacking)}; "
                   f"an administrator must complete {SECRETS_FILE} (see secrets.toml.example).")
    return AccessPolicy(enabled=True, allowed_domains=domains, allowed_emails=emails, problem=problem)


def email_unverified(user: Mapping[str, Any], provider_claims: frozenset[str] | None) -> bool:
    """True when this identity must be refused for its email: `email_verified` is false (False, "false", 0), or it
    is absent although the provider lists it in `claims_supported` (`provider_claims`; None = not known)."""
    value = user.get("email_verified")
    if value is None:
        return provider_claims is not None and "email_verified" in provider_claims
    if isinstance(value, str):
        return value.strip().lower() != "true"
    return value is not True


def identity(user: Mapping[str, Any] | None) -> str:
    """Who is acting, for the audit trail: the signed-in email, else "anonymous"."""
    try:
        if user is None or user.get("is_logged_in") is False:
            return "anonymous"
        return str(user.get("email") or "anonymous")
    except Exception:  # noqa: BLE001 - st.user can refuse access outside a script run; the audit says "anonymous"
        return "anonymous"
