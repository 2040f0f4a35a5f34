"""Hostile input, table-driven, through every way in: key intake, check_key against the sandbox, the CLI
(`check`, `check --tenant`, `history`, `recheck --csv -`, `test-transaction`), the store (tenant names, notes,
contact) and the dashboard's rendering of names.

For every input: a clear one-sentence message (no traceback; exit 2 for a CLI usage error), nothing stored
half-done (rows counted in tenants/checks/check_rows/audit before and after: a refused input changes nothing,
a recheck with bad lines records exactly the good ones), SQL quotes stored verbatim as data, and no HTML from
input rendered as HTML.
"""
from __future__ import annotations

import ast
import html
import json
import os
import re
import unicodedata
from pathlib import Path

import pytest
import sqlalchemy as sa
import stripe
from cli_process import run_core
from support import FAST

from core import store
from core.engine.check import check_key
from core.engine.keys import intake
from sandbox import DEMO_KEYS

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("tenants", "checks", "check_rows", "audit")

HEALTHY = DEMO_KEYS["healthy"].key
LIVE = DEMO_KEYS["live_healthy"].key
BODY = HEALTHY[len("rk_test_"):]


def flip(s: str, i: int) -> str:
    """`s` with the character at i replaced by another base62 character."""
    i %= len(s)
    return s[:i] + ("a" if s[i] != "a" else "b") + s[i + 1:]


def swapcase_at(s: str, i: int) -> str:
    i = next(j for j in range(i, len(s)) if s[j].isalpha())
    return s[:i] + s[i].swapcase() + s[i + 1:]


# Markers of hostile payloads: none may come back in a message, a masked form, the CLI's output or the database.
MARKERS = ("<script", "<img", "<b>", "javascript:", "onerror", "DROP TABLE", "' OR '", "\x00", "\x07", "\x1b",
           "\u202e", "\u2066", "\u200b", "\ufeff", "\ud800", "\udcff", "**bold**", "](")


def forbidden_in(raw: str) -> list[str]:
    """What of `raw` must never be echoed: the markers it holds, the whole of it and its middle 20 characters."""
    out = [m for m in MARKERS if m in raw]
    core = "".join(c for c in raw if not c.isspace() and unicodedata.category(c) != "Cf")
    if len(core) >= 12:
        out.append(core)
    if len(core) >= 24:
        mid = len(core) // 2
        out.append(core[mid - 10:mid + 10])
    return out


def assert_one_sentence(msg: str, forbidden=()) -> None:
    """One clear sentence: one line, starts with a capital, ends with a full stop, no traceback or control
    characters, nothing hostile echoed."""
    assert isinstance(msg, str) and msg.strip(), f"empty message: {msg!r}"
    m = msg.strip()
    assert "\n" not in m and "Traceback" not in m, m
    assert m[0].isupper() and m.endswith("."), m
    assert not re.search(r"[.!?] [A-Z]", m[:-1]), f"more than one sentence: {m}"
    assert len(m) <= 600, m
    assert not any(unicodedata.category(c) in ("Cc", "Cs") or c in "\u202e\u2066\u200b" for c in m), repr(m)
    for f in forbidden:
        assert f not in m, f"the message echoes {f[:40]!r}: {m}"


def assert_safe_masked(masked: str, forbidden=()) -> None:
    assert len(masked) <= 40, masked
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in masked), repr(masked)
    placeholder = re.fullmatch(r"\(\d+ characters?\)|\(empty\)|\(blank\)", masked)
    assert placeholder or not set(masked) & set("<>\"'`*[]()\\"), masked
    for f in forbidden:
        assert f not in masked, masked


def counts(url: str) -> dict:
    """Rows per table, and the set of tables (a DROP TABLE that ran would show here)."""
    with store.connect(url) as conn:
        tables = frozenset(sa.inspect(conn).get_table_names())
        out = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in TABLES}
    out["_tables"] = tables
    return out


def files_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def assert_absent(blob: bytes, forbidden, where: str) -> None:
    """No forbidden text in a binary blob (single control characters are everywhere in a database file)."""
    for f in (f for f in forbidden if len(f) >= 4):
        enc = f.encode("utf-8", "surrogatepass")
        assert enc not in blob, f"{f[:40]!r} found in {where}"


# ---------------------------------------------------------------------------------------------------------
# Fixtures

@pytest.fixture(autouse=True)
def _clean(sandbox):
    sandbox.reset()
    yield
    sandbox.faults.clear()


@pytest.fixture
def client(sandbox):
    return stripe.StripeClient(
        "sk_unused", base_addresses={"api": sandbox.url, "files": sandbox.url}, max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=5.0),
    )


@pytest.fixture
def cli_db(tmp_path, sqlite_at_head):
    """A migrated SQLite file for the CLI (so rows can be counted before the first run)."""
    url = sqlite_at_head(tmp_path / "cli.db")
    yield url
    store.dispose_engine(url)


def run_cli(args, sandbox, tmp_path, *, stdin: bytes | str = b"", env: dict | None = None):
    """`python -m core …` in a subprocess against the sandbox; args may be bytes (argv that is not UTF-8)."""
    e = {k: v for k, v in os.environ.items() if k not in ("STRIPE_KEY", "DATABASE_URL", "KEYHEALTH_DATA_DIR")}
    e.update(
        STRIPE_API_BASE=sandbox.url, KEYHEALTH_DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}", KEYHEALTH_RATE_TEST="400", KEYHEALTH_RATE_LIVE="400",
        KEYHEALTH_BACKOFF_S="0.01", NO_COLOR="1", KEYHEALTH_USER="hostile-tests",
    )
    e.update(env or {})
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8", "surrogateescape")
    p = run_core(args, cwd=ROOT, env=e, input=stdin, timeout=180)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    assert "Traceback" not in p.err, p.err[-3000:]
    return p


def assert_usage_error(p, forbidden=()) -> str:
    """Exit 2 with exactly one line on stderr, `error: <one sentence>`, and nothing on stdout."""
    assert p.returncode == 2, (p.returncode, p.out[-500:], p.err[-500:])
    lines = [x for x in p.err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.err
    assert_one_sentence(lines[0][len("error: "):], forbidden)
    assert p.out == ""
    return lines[0]


# =========================================================================================================
# 1. Keys: intake, check_key via the sandbox, `python -m core check --tenant … --json`
# =========================================================================================================
# (id, raw, how it ends): "usage" = the CLI sees no key at all (exit 2); "local" = refused by intake, no
# request; "sandbox" = well-formed, so it reaches Stripe (the sandbox) which refuses it as invalid: 1 request.
KEY_CASES = [
    ("empty", "", "usage"),
    ("whitespace-only", "   \n\t  \n", "usage"),
    ("zero-width-only", "\u200b\u200c\u200d\ufeff\u2060", "local"),
    ("huge-1MB-key-shaped", "rk_test_" + "A" * 1_048_576, "local"),
    ("huge-1MB-garbage", "x" * 1_048_576, "local"),
    ("just-over-paste-limit", "rk_test_" + "a" * 10_000, "local"),
    ("longer-than-any-key", "rk_test_" + "a" * 300, "local"),
    ("extremely-long-line", ("word " * 2000).strip(), "local"),
    ("control-bell", HEALTHY[:30] + "\x07" + HEALTHY[30:], "local"),
    ("nul-middle", HEALTHY[:40] + "\x00" + HEALTHY[40:], "local"),
    ("nul-end", HEALTHY + "\x00", "local"),
    ("terminal-title-escape", HEALTHY[:-4] + "\x1b]0;pwned\x07", "local"),
    ("terminal-clear-escape", "\x1b[2J\x1b[H" + "rk_test_" + "\x1b[8m" + flip(BODY, -1), "sandbox"),
    ("ansi-colour-wrapped", "\x1b[31m" + flip(HEALTHY, -1) + "\x1b[0m", "sandbox"),
    ("rlo-before-fake-key", "\u202e" + flip(HEALTHY, -1), "sandbox"),
    ("rlo-with-html", "\u202e<script>alert(1)</script>", "local"),
    ("zero-width-inside-fake-key", flip(HEALTHY, -1)[:50] + "\u200b\u200d" + flip(HEALTHY, -1)[50:], "sandbox"),
    ("html-script", "<script>alert(1)</script>", "local"),
    ("html-script-in-key", "rk_test_<script>alert(1)</script>" + "a" * 20, "local"),
    ("html-img-onerror", '<img src=x onerror="alert(1)">', "local"),
    ("markdown-js-link", "[x](javascript:alert(1))", "local"),
    ("markdown-bold-key", "**bold**" + "rk_test_" + BODY, "local"),
    ("markdown-image", "![x](https://evil.example/p.png)", "local"),
    ("sql-drop", "'; DROP TABLE tenants; --", "local"),
    ("sql-drop-in-key", "rk_test_'; DROP TABLE tenants; --", "local"),
    ("sql-or-true", "rk_test_' OR '1'='1", "local"),
    ("github-pat", "ghp_" + "R4nd0mG1tHubT0k3nV4lu3Xy7Zq9Wk2Mn5Pb", "local"),
    ("github-fine-grained", "github_pat_11ABCDEFG0k9Lm2Np4Qr6St8Uv0Wx2Yz4Ab6Cd8Ef0Gh2Ij4Kl6Mn8Op0Qr2St4Uv6W", "local"),
    ("aws-access-key", "AKIAIOSFODNN7EXAMPLE", "local"),
    ("openai-project", "sk-proj-" + "Zx9Cv8Bn7Mm6Ll5Kk4Jj3Hh2Gg1Ff0Dd9Ss8Aa7Qq6Ww5Ee4Rr3", "local"),
    ("slack-bot", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "local"),
    ("emoji-in-key", "rk_test_\U0001F511" + BODY[1:], "local"),
    ("emoji-only", "\U0001F511\U0001F511\U0001F511", "local"),
    ("publishable-key", "pk_test_" + BODY, "local"),
    ("standard-secret-key", DEMO_KEYS["standard"].key, "local"),
    ("webhook-secret", "whsec_" + BODY[:32], "local"),
    ("two-keys", HEALTHY + "\n" + LIVE, "local"),
    ("key-inside-url", "https://dashboard.stripe.com/test/apikeys?key=" + HEALTHY, "local"),
    ("csv-line-as-key", "Acme," + HEALTHY, "local"),
    ("json-wrapped-fake-key", '{"key": "' + flip(HEALTHY, -1) + '"}', "sandbox"),
    # One character changed: well-formed, so only Stripe can tell; refused as invalid after 1 request.
    ("one-char-last", flip(HEALTHY, -1), "sandbox"),
    ("one-char-first-of-body", flip(HEALTHY, 8), "sandbox"),
    ("one-char-middle", flip(HEALTHY, 60), "sandbox"),
    ("one-char-case-swapped", swapcase_at(HEALTHY, 40), "sandbox"),
    ("one-char-dropped", HEALTHY[:-1], "sandbox"),
    ("one-char-added", HEALTHY + "Z", "sandbox"),
    ("one-char-live-key", flip(LIVE, -1), "sandbox"),
    ("test-key-relabelled-live", HEALTHY.replace("rk_test_", "rk_live_"), "sandbox"),
]
KEY_PARAMS = [pytest.param(raw, how, id=i) for i, raw, how in KEY_CASES]


@pytest.mark.parametrize("raw,how", KEY_PARAMS)
def test_key_intake_refuses_with_one_sentence(raw, how):
    it = intake(raw)
    forbidden = forbidden_in(raw)
    assert_safe_masked(it.info.masked, forbidden)
    if how == "sandbox":
        # Well-formed after normalisation (quotes, colour codes, invisible characters peeled): only Stripe can
        # tell, so intake lets it through; the key handed on is plain base62 with the right prefix.
        assert it.accepted, it.info.problem
        assert re.fullmatch(r"rk_(test|live)_[A-Za-z0-9]{24,247}", str(it.key))
        return
    assert not it.accepted and it.key is None
    assert_one_sentence(it.info.problem, forbidden)
    assert it.info.fingerprint is None or it.info.kind in ("secret", "publishable", "webhook_secret")


@pytest.mark.parametrize("raw,how", KEY_PARAMS)
def test_key_check_against_the_sandbox(raw, how, sandbox, client):
    res = check_key(raw, client=client, settings=FAST)
    forbidden = forbidden_in(raw)
    # Never partially trusted: invalid, score 0, no grid, no account.
    assert res.status == "invalid" and res.score == 0 and res.rows == [] and res.account is None
    assert_one_sentence(res.problem, forbidden)
    assert_safe_masked(res.key.masked, forbidden)
    log = sandbox.requests
    if how == "sandbox":
        assert res.requests == 1 and len(log) == 1, [(r.path, r.status) for r in log]
        assert log[0].status == 401 and log[0].key_id is None  # unknown to Stripe
    else:
        assert res.requests == 0 and log == []
    dumped = json.dumps(res.to_json(), ensure_ascii=False)
    for f in forbidden:
        assert f not in dumped, f"{f[:40]!r} in the JSON result"


@pytest.mark.parametrize("raw,how", KEY_PARAMS)
def test_key_cli_check_with_tenant(raw, how, sandbox, tmp_path, cli_db):
    before = counts(cli_db)
    p = run_cli(["check", "--tenant", "Hostile Keys Ltd", "--json"], sandbox, tmp_path, stdin=raw)
    forbidden = forbidden_in(raw)
    after = counts(cli_db)
    if how == "usage":
        assert_usage_error(p)
        assert "STRIPE_KEY" in p.err
        assert after == before and sandbox.requests == []
        return
    assert p.returncode == 1, (p.out[-500:], p.err[-500:])
    out = json.loads(p.out)
    assert out["status"] == "invalid" and out["score"] == 0 and out["rows"] == []
    assert_one_sentence(out["problem"], forbidden)
    assert out["requests"] == (1 if how == "sandbox" else 0) == len(sandbox.requests)
    for f in forbidden:
        assert f not in p.out and f not in p.err, f"{f[:40]!r} in the CLI output"
    # Recorded completely, once: a tenant, one check, no rows, one audit entry; and nothing of the input on disk.
    assert after["_tables"] == before["_tables"]
    assert {t: after[t] - before[t] for t in TABLES} == {"tenants": 1, "checks": 1, "check_rows": 0, "audit": 1}
    [entry] = store.at(cli_db).list_audit(tenant="Hostile Keys Ltd", limit=1)
    assert entry["action"] == "check" and entry["outcome"] == "invalid"
    [hist] = store.at(cli_db).tenant_history("Hostile Keys Ltd")
    assert hist["status"] == "invalid" and hist["problem"] == out["problem"]
    assert hist["key_masked"] == out["key"]["masked"]
    store.dispose_engine(cli_db)
    assert_absent(files_bytes(tmp_path), forbidden, "the data directory or database files")


def test_key_never_accepted_as_an_argument(sandbox, tmp_path, cli_db):
    before = counts(cli_db)
    p = run_cli(["check", "--tenant", "Acme", HEALTHY], sandbox, tmp_path)
    assert p.returncode == 2 and HEALTHY not in p.out + p.err and "never from arguments" in p.err
    assert counts(cli_db) == before and sandbox.requests == []


def test_empty_stripe_key_variable_is_a_usage_error(sandbox, tmp_path, cli_db):
    before = counts(cli_db)
    p = run_cli(["check", "--tenant", "Acme", "--json"], sandbox, tmp_path, env={"STRIPE_KEY": ""})
    assert_usage_error(p)
    assert counts(cli_db) == before and sandbox.requests == []


def test_cli_reads_bytes_that_are_not_utf8_without_a_traceback(sandbox, tmp_path, cli_db):
    """Standard input that is not UTF-8 (even with PYTHONIOENCODING=utf-8, which makes stdin strict)."""
    for env in ({}, {"PYTHONIOENCODING": "utf-8"}):
        p = run_cli(["check", "--json"], sandbox, tmp_path, stdin=b"rk_test_\xff\xfe" + BODY.encode(), env=env)
        assert p.returncode == 1
        out = json.loads(p.out)
        assert out["status"] == "invalid" and "non-ASCII" in out["problem"]
        assert_one_sentence(out["problem"])
    assert sandbox.requests == []


# =========================================================================================================
# 2. Tenant names: the store (get_or_create_tenant, record_check, update_tenant, record_audit) and the CLI
# =========================================================================================================
REFUSED_NAMES = [
    ("empty", ""),
    ("spaces", "    "),
    ("huge-1MB", "A" * 1_048_576),
    ("101-chars", "N" * 101),
    ("newline", "Acme\nInc"),
    ("tab", "Acme\tInc"),
    ("carriage-return", "Acme\rInc"),
    ("nul", "Acme\x00Inc"),
    ("ansi-escape", "\x1b[31mAcme\x1b[0m"),
    ("bell", "Acme\x07"),
    ("next-line-c1", "Acme\x85Inc"),
    ("line-separator", "Acme\u2028Inc"),
    ("rlo-override", "Acme\u202etxt.exe"),
    ("rtl-isolate", "\u2067Acme\u2069 Ltd"),
    ("rtl-mark", "Acme\u200f Ltd"),
    ("zero-width-space", "Ac\u200bme"),
    ("bom-inside", "Acme\ufeff Ltd"),
    ("soft-hyphen", "Ac\u00adme"),
    ("word-joiner", "Acme\u2060Ltd"),
    ("not-utf8-bytes", "Acme\udcff"),
    ("stripe-key-as-name", HEALTHY),
    ("stripe-key-inside-name", "Acme " + LIVE),
]
VERBATIM_NAMES = [
    ("sql-drop", "'; DROP TABLE tenants; --"),
    ("sql-bobby", "Robert'); DROP TABLE checks;--"),
    ("sql-quotes", "O'Brien \"Bob\" & Sons"),
    ("sql-like-wildcards", "100%_off \\ back\\slash"),
    ("html-script", "<script>alert(1)</script>"),
    ("html-bold", "<b>x</b>"),
    ("html-img-onerror", "<img src=x onerror=alert(1)>"),
    ("markdown-js-link", "[x](javascript:alert(1))"),
    ("markdown-emphasis", "**bold** _it_ `code` # h1"),
    ("emoji", "\U0001F511 Keys & Co"),
    ("emoji-zwj-family", "\U0001F468\u200d\U0001F469\u200d\U0001F467 Family Shop"),
    ("cjk", "東京ストア"),
    ("hebrew", "שלום Ltd"),
    ("exactly-100", "B" * 100),
    ("other-provider-token-shape", "ghp_NotReallyAToken but a name"),
]


def _name_ops(url, name, existing, result):
    """Every store function that takes a tenant name: (label, call)."""
    return [
        ("get_or_create_tenant", lambda: store.at(url).get_or_create_tenant(name)),
        ("record_check", lambda: store.at(url).record_check(result, name, source="cli", checked_by="ops")),
        ("update_tenant(name=)", lambda: store.at(url).update_tenant(existing, name=name)),
        ("record_audit(tenant=)", lambda: store.at(url).record_audit("check", who="ops", tenant=name)),
        ("get_tenant", lambda: store.at(url).get_tenant(name)),
    ]


@pytest.mark.parametrize("name", [pytest.param(n, id=i) for i, n in REFUSED_NAMES])
def test_refused_tenant_name_changes_nothing(name, store_url, make_result):
    existing = store.at(store_url).get_or_create_tenant("Existing Tenant")["id"]
    before = counts(store_url)
    tenant_before = store.at(store_url).get_tenant(existing)
    for label, op in _name_ops(store_url, name, existing, make_result()):
        with pytest.raises(store.StoreInputError) as e:
            op()
        assert_one_sentence(str(e.value), forbidden_in(name)), label
        assert counts(store_url) == before, f"{label} changed the store"
    assert store.at(store_url).get_tenant(existing) == tenant_before


@pytest.mark.parametrize("name", [pytest.param(n, id=i) for i, n in VERBATIM_NAMES])
def test_odd_tenant_name_is_stored_verbatim_as_data(name, store_url, make_result):
    before = counts(store_url)
    t = store.at(store_url).get_or_create_tenant(name)
    assert t["name"] == name and t["slug"] == store.slugify(t["slug"])  # a slug names its tenant
    assert all(ch == "-" or unicodedata.category(ch)[0] in "LMN" for ch in t["slug"]), t["slug"]
    assert not t["slug"].startswith("-") and not t["slug"].endswith("-") and "--" not in t["slug"]
    cid = store.at(store_url).record_check(make_result(), name, source="cli", checked_by="ops")
    store.at(store_url).record_audit("check", who="ops", tenant=name, detail=f"checked {name}")
    after = counts(store_url)
    assert after["_tables"] == before["_tables"], "a table disappeared: input was executed"
    assert {k: after[k] - before[k] for k in TABLES} == {"tenants": 1, "checks": 1, "check_rows": 2, "audit": 1}
    assert store.at(store_url).get_tenant(name)["name"] == name
    assert store.at(store_url).get_check(cid)["tenant_id"] == t["id"]
    [a] = store.at(store_url).list_audit(tenant=name)
    assert a["tenant"] == name and a["detail"] == f"checked {name}"
    # renaming to it and back keeps it verbatim too
    other = store.at(store_url).get_or_create_tenant("Plain Name")
    store.at(store_url).update_tenant(t["id"], name="Temporary")
    assert store.at(store_url).update_tenant(t["id"], name=name)["name"] == name
    assert [x["name"] for x in store.at(store_url).list_tenants(search=name)] == [name]
    assert store.at(store_url).get_tenant(other["id"])["name"] == "Plain Name"


def test_tenant_names_colliding_by_slug_are_never_merged(store_url, make_result):
    first = store.at(store_url).get_or_create_tenant("Acme Inc.")
    for same in ("acme inc.", "  ACME   Inc.  ", "Acme Inc."):  # the same name in another case or spacing
        assert store.at(store_url).get_or_create_tenant(same)["id"] == first["id"], same
        store.at(store_url).record_check(make_result(), same, source="cli", checked_by=None)
    c = counts(store_url)
    assert c["tenants"] == 1 and c["checks"] == 3
    # another name with the same slug is refused, naming the tenant it matches; a non-ASCII letter is a new tenant
    for close in ("acme inc", "ACME, INC", "acme-inc"):
        with pytest.raises(store.StoreInputError) as e:
            store.at(store_url).record_check(make_result(), close, source="cli", checked_by=None)
        assert_one_sentence(str(e.value))
        assert "'Acme Inc.'" in str(e.value)
    assert store.at(store_url).get_or_create_tenant("Ácme Inc")["id"] != first["id"]
    assert counts(store_url)["checks"] == 3
    assert store.at(store_url).get_tenant("acme inc")["name"] == "Acme Inc."  # looking up still finds it
    # markup and SQL do not collapse onto plain words silently either
    html = store.at(store_url).get_or_create_tenant("<b>x</b>")
    with pytest.raises(store.StoreInputError) as e:
        store.at(store_url).get_or_create_tenant("B X B")
    assert "'<b>x</b>'" in str(e.value) and store.at(store_url).get_tenant(html["id"])["name"] == "<b>x</b>"
    # emoji-only names get distinct hashed slugs; the same emoji is the same tenant
    k1 = store.at(store_url).get_or_create_tenant("\U0001F511")
    k2 = store.at(store_url).get_or_create_tenant("\U0001F5DD")
    assert k1["id"] != k2["id"] and k1["slug"].startswith("tenant-")
    assert store.at(store_url).get_or_create_tenant(" \U0001F511 ")["id"] == k1["id"]
    # renaming onto another tenant's slug is refused, nothing changes
    other = store.at(store_url).get_or_create_tenant("Other Ltd")
    before = counts(store_url)
    with pytest.raises(store.StoreInputError) as e:
        store.at(store_url).update_tenant(other["id"], name="ACME inc.")
    assert_one_sentence(str(e.value))
    assert counts(store_url) == before and store.at(store_url).get_tenant(other["id"])["name"] == "Other Ltd"


# CLI: `check --tenant NAME`. argv cannot hold NUL or 1 MB (the kernel's 128 KiB limit per argument), so those
# two become 100,000 characters and are covered by the store table above; bytes that are not UTF-8 go as bytes.
CLI_REFUSED_NAMES = [(i, n) for i, n in REFUSED_NAMES if "\x00" not in n and len(n) < 1000]
CLI_REFUSED_NAMES = [(i, n.encode("utf-8", "surrogateescape") if i == "not-utf8-bytes" else n)
                     for i, n in CLI_REFUSED_NAMES] + [("huge-100k", "H" * 100_000)]


@pytest.mark.parametrize("name", [pytest.param(n, id=i) for i, n in CLI_REFUSED_NAMES])
def test_cli_refused_tenant_name_is_a_usage_error_before_any_request(name, sandbox, tmp_path, cli_db):
    before = counts(cli_db)
    p = run_cli(["check", "--tenant", name, "--json"], sandbox, tmp_path, stdin=HEALTHY)
    text = name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name
    assert_usage_error(p, forbidden_in(text) if text.strip() else ())
    assert sandbox.requests == [], "a bad tenant name must be refused before the key is sent anywhere"
    assert counts(cli_db) == before
    if text.strip():
        h = run_cli(["history", "--tenant", name, "--json"], sandbox, tmp_path)
        assert_usage_error(h, forbidden_in(text))
        assert counts(cli_db) == before


@pytest.mark.parametrize("name", [pytest.param(n, id=i) for i, n in VERBATIM_NAMES])
def test_cli_odd_tenant_name_recorded_verbatim(name, sandbox, tmp_path, cli_db):
    before = counts(cli_db)
    p = run_cli(["check", "--tenant", name, "--json"], sandbox, tmp_path, stdin=HEALTHY)
    assert p.returncode == 0, p.err
    assert json.loads(p.out)["status"] == "healthy"
    after = counts(cli_db)
    assert after["_tables"] == before["_tables"]
    assert after["tenants"] - before["tenants"] == 1 and after["checks"] - before["checks"] == 1
    h = run_cli(["history", "--tenant", name, "--json"], sandbox, tmp_path)
    assert h.returncode == 0, h.err
    hist = json.loads(h.out)
    assert hist["tenant"]["name"] == name and len(hist["checks"]) == 1
    t = run_cli(["history", "--tenant", name], sandbox, tmp_path)  # the table form prints it as given
    assert t.returncode == 0 and t.out.splitlines()[0].startswith(f"{name} (")


def test_cli_empty_tenant_is_refused_not_ignored(sandbox, tmp_path, cli_db):
    before = counts(cli_db)
    p = run_cli(["check", "--tenant", "", "--json"], sandbox, tmp_path, stdin=HEALTHY)
    assert "empty" in assert_usage_error(p)
    assert counts(cli_db) == before and sandbox.requests == []


def test_cli_tenants_colliding_by_slug(sandbox, tmp_path, cli_db):
    for name in ("Acme Inc.", "acme inc.", "ACME  INC."):
        assert run_cli(["check", "--tenant", name], sandbox, tmp_path, stdin=HEALTHY).returncode == 0
    c = counts(cli_db)
    assert c["tenants"] == 1 and c["checks"] == 3
    h = json.loads(run_cli(["history", "--tenant", "acme-inc", "--json"], sandbox, tmp_path).out)
    assert h["tenant"]["name"] == "Acme Inc." and len(h["checks"]) == 3
    # a different name with the same slug: refused before any request, naming the existing tenant
    sandbox.reset()
    p = run_cli(["check", "--tenant", "ACME, INC"], sandbox, tmp_path, stdin=HEALTHY)
    assert "'Acme Inc.'" in assert_usage_error(p) and sandbox.requests == []
    assert counts(cli_db) == c


def test_cli_test_transaction_hostile_tenant_and_idempotency_key(sandbox, tmp_path, cli_db):
    before = counts(cli_db)
    p = run_cli(["test-transaction", "--tenant", "Acme\u202etxt", "--json"], sandbox, tmp_path, stdin=HEALTHY)
    assert_usage_error(p, ["\u202e"])
    assert sandbox.requests == [] and counts(cli_db) == before
    # an idempotency key travels in an HTTP header: a line break in it is refused before any request
    p = run_cli(["test-transaction", "--idempotency-key", "a\r\nX-Injected: 1", "--json"], sandbox, tmp_path,
                stdin=HEALTHY)
    assert p.returncode == 1
    out = json.loads(p.out)
    assert out["status"] == "refused" and out["requests"] == 0 and sandbox.requests == []
    assert_one_sentence(out["problem"], ["X-Injected"])
    # SQL in a tenant name is data here too
    p = run_cli(["test-transaction", "--tenant", "'; DROP TABLE audit; --", "--json"], sandbox, tmp_path,
                stdin=HEALTHY)
    assert p.returncode == 0, p.err
    after = counts(cli_db)
    assert after["_tables"] == before["_tables"] and after["audit"] == before["audit"] + 1
    [a] = store.at(cli_db).list_audit(tenant="'; DROP TABLE audit; --")
    assert a["tenant"] == "'; DROP TABLE audit; --"


@pytest.mark.parametrize("args", [
    pytest.param(["sample-data", "--dataset", "<script>alert(1)</script>"], id="sample-data-html-dataset"),
    pytest.param(["sample-data", "--dataset", "charges'; DROP TABLE checks; --"], id="sample-data-sql-dataset"),
    pytest.param(["sample-data", "--days", "0"], id="sample-data-zero-days"),
    pytest.param(["sample-data", "--rows", "100000000"], id="sample-data-huge-rows"),
    pytest.param(["sample-data", "--days", "abc"], id="sample-data-days-not-a-number"),
    pytest.param(["test-transaction", "--amount", "1e9"], id="transaction-amount-not-an-int"),
    pytest.param(["history", "--tenant", "No Such Tenant"], id="history-unknown-tenant"),
    pytest.param(["recheck", "--csv", "/etc/passwd"], id="recheck-csv-path"),
])
def test_cli_hostile_arguments_are_usage_errors(args, sandbox, tmp_path, cli_db):
    before = counts(cli_db)
    p = run_cli(args, sandbox, tmp_path, stdin=HEALTHY)
    assert p.returncode == 2, (p.out[-300:], p.err[-300:])
    assert p.out == "" and "Traceback" not in p.err
    last = p.err.strip().splitlines()[-1]
    assert last.startswith(("error: ", "python -m core")), p.err
    if last.startswith("error: "):
        assert_one_sentence(last[len("error: "):].split(": error: ")[-1])
    assert sandbox.requests == [] and counts(cli_db) == before
    assert "root:" not in p.out + p.err  # /etc/passwd is never read


@pytest.mark.parametrize("args", [
    pytest.param(["--currency", "<b>"], id="currency-html"),
    pytest.param(["--currency", "usd'; DROP"], id="currency-sql"),
    pytest.param(["--amount", "-5"], id="amount-negative"),
    pytest.param(["--amount", "99999999999"], id="amount-huge"),
    pytest.param(["--idempotency-key", "x" * 256], id="idempotency-too-long"),
    pytest.param(["--idempotency-key", "caf\u00e9\u202e"], id="idempotency-non-ascii"),
])
def test_cli_test_transaction_refuses_hostile_values_before_any_request(args, sandbox, tmp_path, cli_db):
    before = counts(cli_db)
    p = run_cli(["test-transaction", "--json", *args], sandbox, tmp_path, stdin=HEALTHY)
    assert p.returncode == 1, p.err
    out = json.loads(p.out)
    assert out["status"] == "refused" and out["requests"] == 0 and out["charge"] is None
    assert_one_sentence(out["problem"], ["\u202e", "x" * 40])
    assert sandbox.requests == [] and sandbox.created == [] and counts(cli_db) == before


# =========================================================================================================
# 3. Notes and contact (update_tenant)
# =========================================================================================================
NOTES_CASES = [
    ("huge-1MB", "n" * 1_048_576, None),
    ("5001-chars", "n" * 5001, None),
    ("nul", "see\x00this", None),
    ("ansi-clear-screen", "\x1b[2J\x1b[Hcleared", None),
    ("bell", "ding\x07", None),
    ("rlo-override", "invoice \u202efdp.exe", None),
    ("zero-width-space", "pay\u200bment", None),
    ("not-utf8-bytes", "caf\udce9", None),
    ("sql-drop", "'; DROP TABLE tenants; --", "'; DROP TABLE tenants; --"),
    ("html-script", "<script>alert(1)</script>", "<script>alert(1)</script>"),
    ("html-img-onerror", "<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
    ("markdown-js-link", "[click](javascript:alert(1)) **now**", "[click](javascript:alert(1)) **now**"),
    ("multi-line", "  line 1\nline 2\r\n\tindented  ", "line 1\nline 2\r\n\tindented"),
    ("emoji", "\U0001F511\u2728 ok", "\U0001F511\u2728 ok"),
    ("exactly-5000", "n" * 5000, "n" * 5000),
    ("stripe-key-redacted", f"their key was {HEALTHY} yesterday",
     f"their key was {HEALTHY[:8]}…{HEALTHY[-4:]} yesterday"),
]
CONTACT_CASES = [
    ("huge-1MB", "c" * 1_048_576, None),
    ("201-chars", "c" * 201, None),
    ("newline", "ops@example.com\nBcc: all@example.com", None),
    ("nul", "ops@example.com\x00", None),
    ("rlo-override", "ops@\u202emoc.elpmaxe", None),
    ("zero-width-space", "ops@exa\u200bmple.com", None),
    ("not-utf8-bytes", "ops\udcff@example.com", None),
    ("stripe-key", "key " + HEALTHY, None),
    ("sql-drop", "x'; DROP TABLE tenants; --", "x'; DROP TABLE tenants; --"),
    ("html-script", "<script>alert(1)</script>@example.com", "<script>alert(1)</script>@example.com"),
    ("markdown-link", "[mail](javascript:alert(1))", "[mail](javascript:alert(1))"),
    ("emoji-and-spaces", "  \U0001F4E7 ops@example.com  ", "\U0001F4E7 ops@example.com"),
]


@pytest.mark.parametrize(
    "field,value,stored",
    [pytest.param("notes", v, s, id=f"notes-{i}") for i, v, s in NOTES_CASES]
    + [pytest.param("contact", v, s, id=f"contact-{i}") for i, v, s in CONTACT_CASES]
    + [pytest.param("account", v, None, id=f"account-{i}") for i, v in (
        ("sql", "acct_1'; DROP TABLE tenants; --"), ("html", "<script>alert(1)</script>"),
        ("huge", "acct_" + "A" * 1_048_576), ("newline", "acct_1\nacct_2"))],
)
def test_notes_and_contact(field, value, stored, store_url):
    t = store.at(store_url).get_or_create_tenant("Notes Tenant")
    store.at(store_url).update_tenant(t["id"], notes="original notes", contact="orig@example.com")
    before, row_before = counts(store_url), store.at(store_url).get_tenant(t["id"])
    if stored is None:
        with pytest.raises(store.StoreInputError) as e:
            store.at(store_url).update_tenant(t["id"], **{field: value})
        assert_one_sentence(str(e.value), forbidden_in(value))
        assert store.at(store_url).get_tenant(t["id"]) == row_before
    else:
        got = store.at(store_url).update_tenant(t["id"], **{field: value})
        assert got[field] == stored
        assert store.at(store_url).get_tenant(t["id"])[field] == stored
    after = counts(store_url)
    assert after == before  # update_tenant never adds rows; a DROP TABLE that ran would show in _tables


# =========================================================================================================
# 4. CSV lines for `python -m core recheck --csv -`
# =========================================================================================================
K = HEALTHY
# (id, stdin, tenants recorded in order, failed line numbers)
CSV_CASES = [
    ("bom-and-header", "\ufefftenant,key\nAcme," + K + "\n", ["Acme"], []),
    ("bom-no-header", "\ufeffAcme," + K + "\n", ["Acme"], []),
    ("crlf-line-ends", "tenant,key\r\nAcme," + K + "\r\nBeta," + K + "\r\n", ["Acme", "Beta"], []),
    ("quoted-embedded-newline", '"Acme\nInc",' + K + "\nGood," + K + "\n", ["Good"], [1, 2]),
    ("quoted-embedded-crlf", '"Acme\r\nInc",' + K + "\n", [], [1, 2]),
    ("doubled-quotes", '"O""Brien, Ltd",' + K + "\n", ['O"Brien, Ltd'], []),
    ("stray-quote", 'O"Brien,' + K + "\n", [], [1]),
    ("quoted-key", 'Acme,"' + K + '"\n', ["Acme"], []),
    ("extra-fields", "Acme," + K + ",extra\nGood," + K + "\n", ["Good"], [1]),
    ("one-field", "Acme\n" + K + "\n", [], [1, 2]),
    ("empty-tenant", "," + K + "\n", [], [1]),
    ("empty-key", "Acme,\nAcme, \n", [], [1, 2]),
    ("huge-1MB-line", "Acme," + "A" * 1_048_576 + "\nGood," + K + "\n", ["Good"], [1]),
    ("huge-tenant", "T" * 5000 + "," + K + "\n", [], [1]),
    ("nul-in-tenant", "Ac\x00me," + K + "\n", [], [1]),
    ("vertical-tab-splits-nothing", "Acme\x0bCorp," + K + "\n", [], [1]),
    ("form-feed-and-line-separator", "Ac\x0cme," + K + "\nAcme\u2028Corp," + K + "\n", [], [1, 2]),
    ("rlo-tenant", "Acme\u202etxt," + K + "\n", [], [1]),
    ("zero-width-tenant", "Ac\u200bme," + K + "\n", [], [1]),
    ("sql-tenant", "'; DROP TABLE tenants; --," + K + "\n", ["'; DROP TABLE tenants; --"], []),
    ("sql-quoted-tenant", '"Robert\'); DROP TABLE checks;--",' + K + "\n", ["Robert'); DROP TABLE checks;--"], []),
    ("html-tenant", "<script>alert(1)</script>," + K + "\n", ["<script>alert(1)</script>"], []),
    ("markdown-tenant", "[x](javascript:alert(1))," + K + "\n", ["[x](javascript:alert(1))"], []),
    ("emoji-tenant", "\U0001F511 Keys," + K + "\n", ["\U0001F511 Keys"], []),
    ("same-name-other-case", "Acme Inc.," + K + "\nACME inc.," + K + "\n", ["Acme Inc.", "ACME inc."], []),
    ("slug-collision", "Acme Inc.," + K + "\nacme inc," + K + "\n", ["Acme Inc."], [2]),
    ("non-ascii-letters-apart", "北京 Foods," + K + "\n上海 Foods," + K + "\nFoods," + K + "\n",
     ["北京 Foods", "上海 Foods", "Foods"], []),
    ("key-is-github-token", "Acme,ghp_R4nd0mG1tHubT0k3nV4lu3Xy7Zq9Wk2Mn5Pb\n", ["Acme"], []),
    ("key-one-char-changed", "Acme," + flip(K, -1) + "\n", ["Acme"], []),
    ("stripe-key-as-tenant", K + "," + K + "\n", [], [1]),
    ("comments-and-blank-lines", "# tenants\n\n   \nAcme," + K + "\n# end\n", ["Acme"], []),
    # line 3 holds an unclosed quote: refused on its own (fields never span lines), line 4 stands alone
    ("mixed-good-and-bad", "tenant,key\nA1," + K + "\n\"bad\nB2," + K + "\n,x\nC3," + K + "\nD4,x,y\n",
     ["A1", "B2", "C3"], [3, 5, 7]),
]


@pytest.mark.parametrize("text,tenants,failed", [pytest.param(t, n, f, id=i) for i, t, n, f in CSV_CASES])
def test_recheck_records_exactly_the_good_lines(text, tenants, failed, sandbox, tmp_path, cli_db):
    before = counts(cli_db)
    p = run_cli(["recheck", "--csv", "-", "--json"], sandbox, tmp_path, stdin=text)
    assert p.returncode in (0, 1), p.err
    rep = json.loads(p.out)
    assert [f["line"] for f in rep["failed_lines"]] == failed
    for f in rep["failed_lines"]:
        assert_one_sentence(f["problem"], [m for m in MARKERS if m in text] + [K])
    assert [r["tenant"] for r in rep["results"]] == tenants and rep["recorded"] == len(tenants)
    assert p.returncode == (0 if not failed and all(r["status"] == "healthy" for r in rep["results"]) else 1)
    after = counts(cli_db)
    assert after["_tables"] == before["_tables"], "a table disappeared: input was executed"
    assert after["checks"] - before["checks"] == len(tenants)
    assert after["audit"] - before["audit"] == len(tenants)  # every recorded check is audited
    slugs = {store.slugify(t) for t in tenants}
    assert after["tenants"] - before["tenants"] == len(slugs)
    names = {t["name"] for t in store.at(cli_db).list_tenants()}
    assert names == {next(t for t in tenants if store.slugify(t) == s) for s in slugs}  # the first spelling
    hist = [h for t in store.at(cli_db).list_tenants() for h in store.at(cli_db).tenant_history(t["id"])]
    assert len(hist) == len(tenants)
    rows = sum(h["n_ok"] + h["n_missing"] + h["n_excess"] + h["n_unknown"] + h["n_not_applicable"] for h in hist)
    assert after["check_rows"] - before["check_rows"] == rows  # every check complete with its rows
    store.dispose_engine(cli_db)
    assert_absent(files_bytes(tmp_path), [K, K[40:60], "ghp_R4nd0mG1tHubT0k3nV4lu3Xy7Zq9Wk2Mn5Pb"], "the database")


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"), pytest.param("\n\n   \n", id="blank-lines"),
    pytest.param("# only a comment\n", id="only-comments"), pytest.param("\ufeff", id="only-bom"),
])
def test_recheck_without_lines_is_a_usage_error(text, sandbox, tmp_path, cli_db):
    before = counts(cli_db)
    assert_usage_error(run_cli(["recheck", "--csv", "-"], sandbox, tmp_path, stdin=text))
    assert counts(cli_db) == before and sandbox.requests == []


def test_recheck_bytes_that_are_not_utf8_and_utf16_files(sandbox, tmp_path, cli_db):
    before = counts(cli_db)
    p = run_cli(["recheck", "--csv", "-", "--json"], sandbox, tmp_path,
                stdin=b"Acme\xff," + K.encode() + b"\nGood," + K.encode() + b"\n", env={"PYTHONIOENCODING": "utf-8"})
    rep = json.loads(p.out)
    assert [f["line"] for f in rep["failed_lines"]] == [1] and [r["tenant"] for r in rep["results"]] == ["Good"]
    assert_one_sentence(rep["failed_lines"][0]["problem"])
    # Excel's "Unicode" export: UTF-16 with a byte-order mark
    p = run_cli(["recheck", "--csv", "-", "--json"], sandbox, tmp_path,
                stdin=("tenant,key\r\nUtf Sixteen," + K + "\r\n").encode("utf-16"))
    rep = json.loads(p.out)
    assert rep["failed_lines"] == [] and [r["tenant"] for r in rep["results"]] == ["Utf Sixteen"]
    assert counts(cli_db)["checks"] == before["checks"] + 2


def test_recheck_table_output_has_no_control_characters(sandbox, tmp_path, cli_db):
    text = "<b>x</b>," + K + "\n\x1b[31mRed," + K + "\n'; DROP TABLE tenants; --," + flip(K, -1) + "\n"
    p = run_cli(["recheck", "--csv", "-"], sandbox, tmp_path, stdin=text)
    assert p.returncode == 1
    assert "\x1b" not in p.out and "line 2:" in p.out and "2 recorded, 1 lines failed" in p.out
    assert "<b>x</b>" in p.out  # a terminal shows markup as the text it is


# =========================================================================================================
# 5. No HTML from input is rendered as HTML (dashboard)
# =========================================================================================================
HTML_SINKS = {"html"}  # st.html(...), components.html(...): raw HTML whatever the argument


def unsafe_html_calls(source: str, filename: str = "<src>") -> list[str]:
    """Calls that render raw HTML with a non-constant argument: X(…, unsafe_allow_html=<not False>) or
    st.html(…)/components.html(…); every positional argument and body=/html= must be a string constant."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        unsafe = "unsafe_allow_html" in kw and not (
            isinstance(kw["unsafe_allow_html"], ast.Constant) and kw["unsafe_allow_html"].value is False)
        if any(k.arg is None for k in node.keywords) and name in ("markdown", "html", "write", "caption"):
            unsafe = True  # **kwargs could carry unsafe_allow_html=True
        if not unsafe and name not in HTML_SINKS:
            continue
        args = list(node.args) + [v for k, v in kw.items() if k in ("body", "html", "text")]
        if any(isinstance(a, ast.Starred) for a in node.args) or not all(
                isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args):
            found.append(f"{filename}:{node.lineno}: {ast.unparse(node)[:120]}")
    return found


def dashboard_sources() -> list[Path]:
    files = [ROOT / "app.py", *sorted((ROOT / "app_pages").glob("*.py"))]
    files += [p for p in sorted((ROOT / "core").rglob("*.py")) if "streamlit" in p.read_text(encoding="utf-8")]
    return [p for p in files if p.exists()]


def test_unsafe_allow_html_is_only_ever_fed_constant_strings():
    # the checker itself catches what it must (so this test can fail)
    assert unsafe_html_calls("st.markdown(name, unsafe_allow_html=True)")
    assert unsafe_html_calls("st.markdown(f'<b>{name}</b>', unsafe_allow_html=True)")
    assert unsafe_html_calls("st.html(x)") and unsafe_html_calls("components.html('<b>' + x)")
    assert unsafe_html_calls("st.markdown(x, **opts)")
    assert not unsafe_html_calls("st.markdown('<br>', unsafe_allow_html=True)")
    assert not unsafe_html_calls("st.markdown(name)")
    assert not unsafe_html_calls("st.markdown(x, unsafe_allow_html=False)")
    files = dashboard_sources()
    assert any(p.name == "app.py" for p in files) and len(files) >= 2
    bad = [hit for p in files for hit in unsafe_html_calls(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]
    assert bad == [], "raw HTML rendered from a non-constant:\n" + "\n".join(bad)


HTML_NAMES = ["<script>alert(1)</script>", "<b>x</b>", '<img src=x onerror="alert(1)">', "[x](javascript:alert(1))",
              "[Fix your key here](https://evil.example/login) **now**"]
MARKDOWN_FIELDS = ("body", "label", "help")  # what Streamlit renders as markdown in an element's proto


def _walk(node):
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for child in children.values():
            yield from _walk(child)


def _unescape_md(text: str) -> str:
    from core.ui.text import plain  # escapes resolved, the invisible joiners that break autolinks removed

    return html.unescape(plain(text))


def _outside_code(body: str) -> str:
    """The markdown with `code spans` and fenced blocks removed (what is left is rendered as markdown)."""
    body = re.sub(r"```.*?```", "", body, flags=re.S)
    return re.sub(r"(`+)(.+?)\1", "", body, flags=re.S)


def rendered_fields(at, page: str, text: str) -> list[tuple]:
    """(page, element type, field, value, allows HTML) for every markdown-rendered field that shows `text`."""
    out = []
    for node in _walk(at._tree):
        proto = getattr(node, "proto", None)
        if proto is None or not hasattr(proto, "ListFields"):
            continue
        for field, value in proto.ListFields():
            if field.name in MARKDOWN_FIELDS and isinstance(value, str) and text in _unescape_md(value):
                out.append((page, node.type, field.name, value, bool(getattr(proto, "allow_html", False))))
    return out


@pytest.fixture
def app_env(sandbox, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    for k, v in {
        "STRIPE_API_BASE": sandbox.url, "DATABASE_URL": url, "KEYHEALTH_DEMO": "0",
        "KEYHEALTH_DATA_DIR": str(tmp_path / "data"), "KEYHEALTH_FINGERPRINT_SECRET": "hostile-app-tests",
        "KEYHEALTH_RATE_TEST": "400", "KEYHEALTH_RATE_LIVE": "400", "KEYHEALTH_BACKOFF_S": "0.01",
    }.items():
        monkeypatch.setenv(k, v)
    yield url
    store.dispose_engine(url)


def app_pages() -> list[Path]:
    """The pages app.py's router runs (app_pages/ may also hold shared modules)."""
    found = re.findall(r"[\"'](app_pages/[A-Za-z0-9_]+\.py)[\"']", (ROOT / "app.py").read_text(encoding="utf-8"))
    return [ROOT / p for p in dict.fromkeys(found) if (ROOT / p).exists()]


def dashboard_showing(name: str, db_url: str) -> list[tuple]:
    """Check a key for tenant `name` on the dashboard, then open every other page (the tenant's own page by its
    slug): every markdown-rendered field that shows the name, as (page, element type, field, value, allows HTML)."""
    from apptest import AppTest

    at = AppTest.from_file("../../app.py", default_timeout=60)
    at.run()
    assert not at.exception
    pick = at.selectbox(key="kh_tenant_pick")
    pick.set_value(pick.options[0]).run()  # "New tenant…"
    at.text_input(key="kh_tenant_new").input(name)
    at.run()  # the tenant choice first; the key is sent with the form's submit
    at.text_input(key="kh_key_input").input(HEALTHY)
    [b for b in at.button if b.label == "Check and record"][0].click().run()
    assert not at.exception, at.exception
    assert store.at(db_url).get_tenant(name)["name"] == name  # stored verbatim
    found = rendered_fields(at, "check", name)
    for page in app_pages():
        if page.stem == "check":
            continue
        at.switch_page(f"app_pages/{page.name}")
        if page.stem == "tenant":
            at.query_params["tenant"] = store.slugify(name)
        at.run()
        assert not at.exception, (page.name, at.exception)
        found += rendered_fields(at, page.stem, name)
    assert {f[0] for f in found} >= {"check", "tenant"}, f"the tenant name should be shown: {found}"
    return found


@pytest.mark.parametrize("name", HTML_NAMES)
def test_dashboard_never_renders_a_tenant_name_as_raw_html(name, app_env, sandbox):
    for page, typ, field, value, allow_html in dashboard_showing(name, app_env):
        assert not allow_html, f"{page}: {typ}.{field} renders {name!r} with unsafe_allow_html: {value[:200]!r}"


@pytest.mark.parametrize("name", HTML_NAMES)
def test_dashboard_shows_markup_in_a_tenant_name_as_text(name, app_env, sandbox):
    """Markdown sinks must get the name escaped or code-formatted, so `[x](…)` is no link and `<b>` no markup."""
    for page, typ, field, value, _ in dashboard_showing(name, app_env):
        assert name not in _outside_code(value), f"{page}: {typ}.{field} shows {name!r} as markdown: {value[:200]!r}"


def test_dashboard_tenant_from_the_url_is_shown_as_text(app_env, sandbox):
    from apptest import AppTest

    at = AppTest.from_file("../../app.py", default_timeout=60)
    at.switch_page("app_pages/tenant.py")
    evil = "[Log in again](https://evil.example/login)"
    at.query_params["tenant"] = evil
    at.run()
    assert not at.exception, at.exception
    found = rendered_fields(at, "tenant", "evil.example")
    for _page, typ, field, value, allow_html in found:
        assert not allow_html
        assert evil not in _outside_code(value), f"{typ}.{field}: {value!r}"
