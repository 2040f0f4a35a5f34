"""What the tenant must change, in the Stripe Dashboard's own words, and one message to send them."""
from __future__ import annotations

from urllib.parse import quote

from core.engine.catalogue import Catalogue, Profile
from core.engine.result import CheckResult, Row

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


def _lifecycle_lines(result: CheckResult) -> list[str]:
    """Gentle extra lines from the tenant's history: a test key on a live tenant, a key due for rotation."""
    lc = result.lifecycle
    if lc is None:
        return []
    out = []
    if lc.mode_mismatch and lc.expected_mode == "live":
        out.append(
            "One more thing: this is a test-mode key (it starts with rk_test_), and your Pointai account is live. "
            "Please send us the live-mode restricted key (it starts with rk_live_) so Pointai can take real payments."
        )
    if lc.rotation_due and lc.age_days is not None:
        out.append(
            f"This key has been in use for {lc.age_days} days. When it suits you, consider rotating it (create a new "
            "restricted key and paste it into Pointai); nothing is broken, it is simply good practice."
        )
    return out


def edit_link_lines(result: CheckResult) -> list[str]:
    """"Open your key's edit page: <link>" when Stripe's refusal gave the link to this very key's edit page
    (result.edit_link, checked for Stripe's Dashboard host and the key's account by core.engine.probe.edit_link)
    and the message asks the tenant to change a permission; nothing otherwise."""
    if not result.edit_link or not any(r.verdict in ("missing", "excess") for r in result.rows):
        return []
    return [f"Open your key's edit page: {result.edit_link}"]


def _with_lines(body: str, extra: list[str]) -> str:
    if not extra:
        return body
    head, sep, tail = body.rpartition("\n\nThank you!")
    if not sep:
        return body + "\n\n" + "\n\n".join(extra)
    return head + "\n\n" + "\n\n".join(extra) + sep + tail


def tenant_message(result: CheckResult, profile: Profile, catalogue: Catalogue) -> str | None:
    """The message support copies to the tenant: what to change, where, and a link to start over.

    It never claims more than the result holds: None when Stripe was unreachable (nothing is known about
    the key; our side's problem) or when not one permission could be settled; "every permission is right"
    only when every row was settled and is ok; unsettled permissions are named as not checked yet.
    """
    link = create_link(profile, catalogue, result.key.mode)
    if result.status == "unreachable":
        return None
    extra = edit_link_lines(result) + _lifecycle_lines(result)
    traps = guide_notes(result, profile)
    if result.status == "invalid":
        notes = "".join(f"{t}\n" for t in traps)
        return _with_lines(
            f"Hello,\n\nWe could not use the Stripe key you gave Pointai: {result.problem}\n\n"
            f"You can create a correct key in one step with this link (it opens Stripe with every permission "
            f"Pointai needs already set): {link}\nThen paste the new key (it starts with "
            f"rk_{result.key.mode or 'live'}_) into Pointai.\n{notes}\nThank you!",
            [x for x in extra if "rotating" not in x],
        )
    missing = [r for r in result.rows if r.verdict == "missing"]
    excess = [r for r in result.rows if r.verdict == "excess"]
    unknown = [r for r in result.rows if r.verdict == "unknown"]
    settled = [r for r in result.rows if r.verdict in ("ok", "missing", "excess")]
    if not settled:
        return None  # Stripe answered nothing conclusive: there is nothing to tell the tenant yet
    if not missing and not excess:
        if unknown:
            return _with_lines(
                f"Hello,\n\nStripe accepts your key for Pointai, and the {len(settled)} permissions we could check "
                f"are right. We could not check {len(unknown)} more yet (Stripe did not answer for them), so we "
                "will confirm those shortly; there is nothing for you to do for now.\n\nThank you!",
                extra,
            )
        return _with_lines(
            "Hello,\n\nYour Stripe key for Pointai has exactly the permissions Pointai needs. Nothing to change."
            "\n\nThank you!",
            extra,
        )
    lines = [
        "Hello,",
        "",
        "Your Stripe key for Pointai needs a few permission changes.",
        (f'In the Stripe Dashboard go to {EDIT_PATH}, find the restricted key "{profile.key_name}", '
        "click ⋯ → Edit key and set:"),
    ]
    for r in missing:
        lines.append(f"  • {r.category} → {r.resource}: {LEVEL_WORD[r.required]} (now {_granted_word(r)})")
    for r in excess:
        lines.append(
            f"  • {r.category} → {r.resource}: {LEVEL_WORD[r.required]} (now {_granted_word(r)}; "
            f"Pointai does not need more)"
        )
    lines += ["Then click Save. Leave everything else as it is."]
    if unknown:
        lines += ["", (f"We could not check {len(unknown)} more permissions yet (Stripe did not answer for them); "
                       "we will confirm those once you have saved.")]
    if traps:
        lines += [""] + traps
    lines += [
        "",
        f"Or create a new key with exactly the right permissions from this link, and paste it into Pointai: {link}",
        "",
        "Thank you!",
    ]
    return _with_lines("\n".join(lines), extra)
