"""What the tenant must change, in the Stripe Dashboard's own words, and one message to send them.

Two audiences, never mixed:
- the *problem* (CheckResult.problem, each row's `fix`): for support, third person, may be technical;
- the *message* (`tenant_message`, the one builder): for the tenant, second person, in the Stripe Dashboard's
  words, with the one action to take, in one mode only (see `message_mode`). It never names "the tenant",
  never uses an internal word (not_applicable, scope ids: those appear only inside the create-key link).
"""
from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from core.engine.catalogue import Catalogue, Profile
from core.engine.result import CheckResult, Mode, Row

DASHBOARD = "https://dashboard.stripe.com"
LEVEL_WORD = {"none": "None", "read": "Read", "write": "Write"}
EDIT_PATH = "Developers → API keys → Restricted keys"
# This many excess permissions Pointai requires None of: the key was most likely made with every permission.
ALL_PERMISSIONS_EXCESS = 10
URL_FIELD_NOTE = (
    "The website (URL) field in Stripe's create-key form restricts nothing: it is only a label, so it needs no "
    "particular value."
)
DISCOUNTS_NOTE = (
    "“Discounts” in the guide is not a Stripe permission: discounts on customers would need Customers Write, "
    "which the guide sets to None, so Customers should stay None."
)

def _granted_word(row: Row) -> str:
    """What a missing or excess row has now (those are always none, read or write)."""
    return LEVEL_WORD.get(row.granted or "", str(row.granted))


def all_permissions_note(excess: int) -> str:
    return (
        f"{excess} permissions Pointai does not use are granted: most likely “Customize permissions” was left "
        "unticked when the key was created, which gives a restricted key every permission. Creating a new key "
        "from the link (it opens Stripe's form with exactly Pointai's permissions) is quicker than editing "
        f"{excess} rows."
    )


def guide_notes(result: CheckResult, profile: Profile) -> list[str]:
    """The onboarding guide's traps that explain this result, one sentence each (for the page and the message)."""
    notes: list[str] = []
    if result.status == "invalid":
        return [URL_FIELD_NOTE]  # the tenant will create a new key
    unused = [r for r in result.rows if r.verdict == "excess" and r.required == "none"]
    if len(unused) >= ALL_PERMISSIONS_EXCESS:
        notes.append(all_permissions_note(len(unused)))
        notes.append(URL_FIELD_NOTE)
    if any(r.scope == "customer" and r.verdict == "excess" and r.granted == "write" for r in result.rows):
        notes.append(DISCOUNTS_NOTE)
    return notes


def _where(profile: Profile) -> str:
    return f'{EDIT_PATH}, open the key "{profile.key_name}" (⋯ → Edit key)'


def fix_for(row: Row, profile: Profile) -> str | None:
    """One sentence per non-ok row; None for ok rows."""
    now = LEVEL_WORD.get(row.granted or "", row.granted)
    want = LEVEL_WORD[row.required]
    place = f"{row.category} → {row.resource}"
    if row.verdict == "missing":
        return (
            f"In the Stripe Dashboard go to {_where(profile)}, set {place} to {want} (it is {now}), then Save."
        )
    if row.verdict == "excess":
        why = "Pointai does not use it" if row.required == "none" else f"Pointai needs only {want}"
        return (
            f"In the Stripe Dashboard go to {_where(profile)}, set {place} to {want} (it is {now}; {why}), then Save."
        )
    if row.verdict == "unknown":
        return (
            f"Stripe did not answer conclusively for {row.resource} ({row.reason or 'no answer'}); "
            "nothing to change yet: check again in a minute."
        )
    if row.verdict == "not_applicable":
        return f"Nothing to set for “{row.resource}”: {row.note}" if row.note else None
    return None


def create_link(profile: Profile, catalogue: Catalogue, mode: str | None) -> str:
    """A Stripe Dashboard link that opens the create-key form pre-filled with exactly the requirement."""
    perms = []
    for s in catalogue.scopes:
        level, _ = profile.required(s)
        if level != "none":
            perms.append(s.permission(level))
    base = f"{DASHBOARD}/test/apikeys/create" if mode == "test" else f"{DASHBOARD}/apikeys/create"
    query = "&".join([f"name={quote(profile.key_name)}"] + [f"permissions%5B%5D={p}" for p in perms])
    return f"{base}?{query}"




# --- the message for the tenant: one builder ----------------------------------------------------------------
MODE_WORDS = {"live": "live mode", "test": "test mode"}


def message_mode(result: CheckResult) -> Mode:
    """The one mode a tenant message speaks of: live for a tenant in production or a live key; test for a test
    key on a tenant that is not in production (or a key of no mode on a tenant expected in test); else live."""
    expected = result.lifecycle.expected_mode if result.lifecycle is not None else None
    mode = result.key.mode
    if expected == "live" or mode == "live":
        return "live"
    if mode == "test" or expected == "test":
        return "test"
    return "live"


def wants_live_key(result: CheckResult) -> bool:
    """A restricted test-mode key for a tenant in production: the whole message is "send your live key"."""
    lc = result.lifecycle
    return (lc is not None and lc.expected_mode == "live" and result.key.mode == "test"
            and result.key.kind == "restricted")


def day_month(when: datetime, ref: datetime | None = None) -> str:
    """'3 December' in UTC (with the year when it is not `ref`'s year)."""
    d = when.astimezone(UTC) if when.tzinfo else when
    out = f"{d.day} {d:%B}"
    if ref is not None and (ref.astimezone(UTC) if ref.tzinfo else ref).year != d.year:
        out += f" {d.year}"
    return out


KIND_SENTENCE = {
    "secret": (
        "The key you gave Pointai is a standard secret key (it starts with sk_), which gives full access to your "
        "Stripe account; Pointai needs a restricted key instead."
    ),
    "publishable": (
        "The key you gave Pointai is a publishable key (it starts with pk_), which only identifies your Stripe "
        "account; Pointai needs a restricted key instead."
    ),
    "organization": (
        "The key you gave Pointai is an organization key (it starts with sk_org), which reaches every account in "
        "your Stripe organization; Pointai needs a restricted key created in the one account to connect."
    ),
    "webhook_secret": (
        "What you gave Pointai is a webhook signing secret (it starts with whsec_), which only verifies webhook "
        "events; Pointai needs a restricted key instead."
    ),
    "sandbox_claim": (
        "The key you gave Pointai is a claimable-sandbox key from the Stripe CLI (it starts with rkcs_), not your "
        "account's key; Pointai needs a restricted key from your Stripe account."
    ),
    "other_secret": (
        "What you gave Pointai is a secret of another service, not a Stripe key; please don't share it any further "
        "(consider revoking it, since it has been shared)."
    ),
    "empty": "We did not receive a key from you.",
}
REASON_SENTENCE = {
    "masked": (
        "What you gave Pointai is the shortened form of your key that the Stripe Dashboard shows (with …), not the "
        "whole key."
    ),
    "placeholder": "What you gave Pointai is the placeholder from Stripe's documentation, not your key.",
    "key_name": "What you gave Pointai is your key's name, not the key itself.",
}


def refusal_sentence(result: CheckResult) -> str:
    """What happened to a refused key, said to the tenant (second person, no internal words)."""
    k, refused = result.key, result.refused
    if refused == "expired":
        return "Your Stripe key has expired (it was rolled in Stripe), so Pointai can no longer use it."
    if refused == "revoked":
        when = (f" (it last worked on {day_month(result.last_accepted_at, result.checked_at)})"
                if result.last_accepted_at else "")
        return f"Your Stripe key no longer works: it was deleted or rolled in Stripe{when}."
    if refused == "ip_not_allowed":
        return ("Your Stripe key only allows requests from certain IP addresses, so Stripe refuses Pointai's "
                "requests.")
    if refused == "no_key":
        return KIND_SENTENCE["empty"]
    if refused == "invalid":
        return ("Stripe does not accept the key you gave Pointai: it may be mistyped or incomplete, or it was "
                "deleted in Stripe.")
    if k.reason in REASON_SENTENCE:
        return REASON_SENTENCE[k.reason]
    if k.kind in KIND_SENTENCE:
        return KIND_SENTENCE[k.kind]
    if k.kind == "restricted":
        return "The key you gave Pointai is incomplete or mistyped."
    return "What you gave Pointai is not a Stripe restricted key."


def _create_line(mode: Mode, link: str, *, new: bool = True, live_key: bool = False, ip: bool = False) -> str:
    what = "a live restricted key" if live_key else ("a new restricted key" if new else "a restricted key")
    ip_words = ", leave its IP restriction empty," if ip else ""
    return (
        f"Create {what} with this link (it opens Stripe's form in {MODE_WORDS[mode]} with every permission Pointai "
        f"needs already set){ip_words} and paste it into Pointai; the new key starts with rk_{mode}_:\n{link}"
    )


def _rotation_line(result: CheckResult) -> str | None:
    lc = result.lifecycle
    if lc is None or not lc.rotation_due or lc.age_days is None or result.status in ("invalid", "unreachable"):
        return None
    return (
        f"Your key has been in use for {lc.age_days} days. When it suits you, consider rotating it (create a new "
        "restricted key and paste it into Pointai); nothing is broken, it is simply good practice."
    )


def change_lines(rows: list[Row]) -> list[tuple[str, list[str]]]:
    """What to set, grouped by category in grid order: [(category, ["Accounts: Write (now Read)", ...])]."""
    groups: dict[str, list[str]] = {}
    for r in rows:
        if r.verdict == "missing":
            line = f"{r.resource}: {LEVEL_WORD[r.required]} (now {_granted_word(r)})"
        elif r.verdict == "excess":
            why = "Pointai does not use it" if r.required == "none" else "Pointai does not need more"
            line = f"{r.resource}: {LEVEL_WORD[r.required]} (now {_granted_word(r)}; {why})"
        else:
            continue
        groups.setdefault(r.category, []).append(line)
    return list(groups.items())


def _message(parts: list[str | None]) -> str:
    return "\n\n".join(["Hello,", *(p for p in parts if p), "Thank you!"])


def edit_link_lines(result: CheckResult) -> list[str]:
    """"Open your key's edit page: <link>" when Stripe's refusal gave the link to this very key's edit page
    (result.edit_link, checked for Stripe's Dashboard host and the key's account by core.engine.probe.edit_link)
    and the message asks the tenant to change a permission; nothing otherwise."""
    if not result.edit_link or not any(r.verdict in ("missing", "excess") for r in result.rows):
        return []
    return [f"Open your key's edit page: {result.edit_link}"]


def tenant_message(result: CheckResult, profile: Profile, catalogue: Catalogue) -> str | None:
    """The message support copies to the tenant (the one builder; every page, the CLI and the JSON use it).

    Second person, the Stripe Dashboard's words, one action, one mode (`message_mode`): a tenant in production
    or a live key gets the live create-key link and rk_live_, a test key on a test tenant the test ones, and a
    restricted test key on a tenant in production one clear line asking for the live key. A refused key gets
    what happened in the tenant's terms ("Your Stripe key has expired ...", a revoked key "it last worked on
    3 December") and the link to create a new one. It never claims more than the result holds: None when Stripe
    was unreachable (our side) or when not one permission could be settled; "exactly the permissions" only when
    every row was settled and is ok; unsettled permissions are named as not checked yet.
    """
    if result.status == "unreachable":
        return None
    mode = message_mode(result)
    link = create_link(profile, catalogue, mode)
    if wants_live_key(result):
        return _message([
            "The key you gave Pointai is a test-mode key; Pointai needs your live key to take real payments.",
            _create_line(mode, link, live_key=True),
        ])
    if result.status == "invalid":
        secret = (
            "Because that secret key has been shared, please roll it afterwards: in the Stripe Dashboard go to "
            "Developers → API keys, click ⋯ next to the secret key → Roll key."
        ) if result.key.kind == "secret" else None
        return _message([
            refusal_sentence(result),
            _create_line(mode, link, ip=result.refused == "ip_not_allowed"),
            URL_FIELD_NOTE,
            secret,
        ])
    missing = [r for r in result.rows if r.verdict == "missing"]
    excess = [r for r in result.rows if r.verdict == "excess"]
    unknown = [r for r in result.rows if r.verdict == "unknown"]
    settled = [r for r in result.rows if r.verdict in ("ok", "missing", "excess")]
    if not settled:
        return None  # Stripe answered nothing conclusive: there is nothing to tell the tenant yet
    rotation = _rotation_line(result)
    if not missing and not excess:
        if unknown:
            return _message([
                f"Stripe accepts your key for Pointai, and the {len(settled)} permissions we could check are right. "
                f"We could not check {len(unknown)} more yet (Stripe did not answer for them), so we will confirm "
                "those shortly; there is nothing for you to do for now.",
                rotation,
            ])
        return _message([
            "Your Stripe key for Pointai has exactly the permissions Pointai needs. Nothing to change.", rotation,
        ])
    lines = [
        "Your Stripe key for Pointai needs a few permission changes.",
        (f"In the Stripe Dashboard ({MODE_WORDS[mode]}) go to {EDIT_PATH}, find the restricted key "
         f'"{profile.key_name}", click ⋯ → Edit key and set:'),
    ]
    for category, changes in change_lines(result.rows):
        lines += [f"  • {category} → {c}" for c in changes]
    lines.append("Then click Save. Leave everything else as it is.")
    lines += edit_link_lines(result)
    unknown_line = (
        f"We could not check {len(unknown)} more permissions yet (Stripe did not answer for them); we will "
        "confirm those once you have saved."
    ) if unknown else None
    traps = "\n".join(guide_notes(result, profile)) or None
    return _message([
        "\n".join(lines),
        unknown_line,
        traps,
        ("Or create a new key with exactly the right permissions from this link, and paste it into Pointai (it "
         f"starts with rk_{mode}_):\n{link}"),
        rotation,
    ])
