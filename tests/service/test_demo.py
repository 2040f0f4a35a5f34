"""The demo: generated history (real catalogue, real verdicts), its seeding, and the runtime switch."""
from __future__ import annotations

import os
import threading
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from core import runtime, store
from core.config import settings
from core.demo import (
    DEMO_DAYS,
    DEMO_TENANTS,
    STORIES,
    generate,
    seed_demo,
)
from core.engine.catalogue import load_profile
from core.engine.remediation import fix_for
from core.engine.result import KEY_STATUSES
from core.engine.verdict import overall_status, score
from core.store import Database

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def checks():
    return generate(now=NOW)


def latest_by_tenant(checks) -> dict:
    out = {}
    for c in checks:
        out[c.tenant] = c
    return out


def test_generation_is_deterministic(checks):
    again = generate(now=NOW)
    assert [(c.tenant, c.result.status, c.result.score, c.result.checked_at) for c in checks] == [
        (c.tenant, c.result.status, c.result.score, c.result.checked_at) for c in again
    ]


def test_tens_of_tenants_over_several_weeks(checks):
    tenants = {c.tenant for c in checks}
    assert len(tenants) == DEMO_TENANTS
    times = [c.result.checked_at for c in checks]
    assert times == sorted(times)
    assert max(times) <= NOW
    assert max(times) - min(times) > timedelta(days=21)
    recent = [c.result.checked_at for c in checks if c.story != "long_lived"]
    assert min(recent) >= NOW - timedelta(days=DEMO_DAYS + 1)
    old = [c.result.checked_at for c in checks if c.story == "long_lived"]
    assert min(old) < NOW - timedelta(days=180), "a key in use long enough to be due for rotation"
    per_tenant = Counter(c.tenant for c in checks)
    assert sum(per_tenant.values()) > 5 * DEMO_TENANTS


def test_every_status_is_someones_latest(checks):
    latest = Counter(c.result.status for c in latest_by_tenant(checks).values())
    assert set(latest) == set(KEY_STATUSES), latest
    assert latest["healthy"] < DEMO_TENANTS  # not a fleet of green


def test_breakages_and_fixes(checks):
    seq = defaultdict(list)
    for c in checks:
        seq[c.tenant].append(c.result.status)
    fixed = [t for t, s in seq.items() if "failing" in s and s[-1] == "healthy"]
    broke = [t for t, s in seq.items() if s[0] == "healthy" and s[-1] in ("failing", "invalid")]
    assert fixed and broke
    keys = defaultdict(set)
    for c in checks:
        if c.result.key.fingerprint:
            keys[c.tenant].add(c.result.key.fingerprint)
    assert any(len(v) > 1 for v in keys.values()), "some tenant pasted a new key (rolled)"


def test_results_are_what_the_real_verdict_gives(checks):
    profile = load_profile()
    for c in checks:
        r = c.result
        assert "…" in r.key.masked and len(r.key.masked) < 40
        if r.status in ("invalid", "unreachable"):
            assert r.score == 0 and r.problem and not r.rows
            assert (r.message is None) == (r.status == "unreachable")
            continue
        assert r.status == overall_status(r.rows)
        assert r.score == score(r.rows, r.status)
        for row in r.rows:
            assert row.fix == fix_for(row, profile)
        assert r.message and r.requests > 0
        assert c.source in store.SOURCES


def test_every_lifecycle_signal_is_in_the_demo(tmp_path):
    from core.demo import seed_demo

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    s = store.at(url)
    s.upgrade()
    seed_demo(s, now=NOW)
    counts = store.at(url).lifecycle_counts(now=NOW)
    for flag in store.FLAGS:
        assert counts[flag] >= 1, (flag, counts)
        assert store.at(url).latest_checks(flag=flag, now=NOW), flag
    assert store.at(url).replaced_tenants(NOW - timedelta(days=7)) >= 2
    share = store.at(url).unreachable_share()
    assert 0 < share["unreachable"] < share["checks"]
    assert any(d["unreachable"] for d in store.at(url).checks_per_day())
    # the live tenant whose key was replaced by a test key of another account: one event, no drift across it
    (t,) = store.at(url).latest_checks(flag=["mode_changed", "mode_mismatch"], now=NOW)
    events = store.at(url).key_events(t["tenant_id"])
    assert len(events) == 1 and events[0]["mode_changed"] and events[0]["account_changed"]
    assert store.at(url).drift(t["tenant_id"]) == [] or all(
        d["from_key"] == d["to_key"] for d in store.at(url).drift(t["tenant_id"]))
    assert store.at(url).drift(t["tenant_id"], new_key=True)
    revoked = [h for x in store.at(url).list_tenants() for h in store.at(url).tenant_history(x["id"])
               if h["refused"] in ("expired", "revoked")]
    assert {h["refused"] for h in revoked} == {"expired", "revoked"}


def test_every_story_is_told(checks):
    assert len({s for s, _ in STORIES}) == len(STORIES)
    assert sum(w for _, w in STORIES) == DEMO_TENANTS


def test_demo_db_path_honours_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("KEYHEALTH_DATA_DIR", str(tmp_path / "elsewhere"))
    assert settings().demo_database_url == f"sqlite:///{tmp_path / 'elsewhere' / 'demo' / 'keyhealth-demo.db'}"


def test_seed_writes_through_the_store_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    store.at(url).upgrade()
    n = seed_demo(store.at(url), now=NOW)
    assert n == len(generate(now=NOW))
    assert seed_demo(store.at(url), now=NOW) == 0, "seeding is idempotent"
    assert len(store.at(url).list_tenants()) == DEMO_TENANTS
    counts = store.at(url).status_counts()
    assert sum(counts.values()) == DEMO_TENANTS
    drifting = [t for t in store.at(url).list_tenants() if store.at(url).drift(t["slug"])]
    assert drifting, "the history shows permissions changing"
    assert store.at(url).list_audit(action="check", limit=5)
    hist = store.at(url).tenant_history(store.at(url).list_tenants()[0]["slug"])
    assert all(h["checked_at"] <= NOW for h in hist)


# --- runtime ---------------------------------------------------------------------------------------------
@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("KEYHEALTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'real.db'}")
    monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    return tmp_path


def test_real_and_demo_runtimes_never_share_a_database(env):
    before = dict(os.environ)
    real = runtime.build(settings(), demo_mode=False)
    demo = runtime.build(settings(), demo_mode=True)
    assert not real.demo and demo.demo
    assert real.db.url == f"sqlite:///{env / 'real.db'}"
    assert demo.db.url == f"sqlite:///{env / 'data' / 'demo' / 'keyhealth-demo.db'}"
    assert real.api_base == "https://api.stripe.com" and real.is_stripe
    assert demo.api_base.startswith("http://127.0.0.1:") and not demo.is_stripe
    assert dict(os.environ) == before, "switching modes must not touch the process environment"
    assert real.store.list_tenants() == []
    assert len(demo.store.list_tenants()) == DEMO_TENANTS


def test_demo_runtime_starts_one_sandbox_and_seeds_once_under_threads(env):
    results, errors = [], []

    def go():
        try:
            results.append(runtime.demo(settings()))
        except Exception as e:  # noqa: BLE001  # pragma: no cover - a thread reports every failure below
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.api_base for r in results}) == 1
    assert len({r.db for r in results}) == 1
    assert len(results[0].store.list_tenants()) == DEMO_TENANTS
    assert runtime.demo_sandbox_url() == runtime.demo_sandbox_url() == results[0].api_base


def test_the_demo_default_comes_from_the_settings(env, monkeypatch):
    monkeypatch.setenv("KEYHEALTH_DEMO", "1")
    assert settings().demo is True
    monkeypatch.setenv("KEYHEALTH_DEMO", "0")
    assert settings().demo is False


def test_client_is_shared_per_stripe_base(env):
    demo = runtime.build(settings(), demo_mode=True)
    assert demo.client() is demo.client()
    assert runtime.build(settings(), demo_mode=False).client() is not demo.client()


def test_labels_never_show_a_password():
    rt = runtime.Runtime(False, "https://api.stripe.com", Database("postgresql+psycopg://kh:s3cret@db:5432/kh"))
    assert "s3cret" not in rt.db_label and "***" in rt.db_label
    assert rt.stripe_label.startswith("Stripe itself")
    other = runtime.Runtime(False, "http://localhost:12111", Database("sqlite:///x.db"))
    assert "STRIPE_API_BASE" in other.stripe_label


def test_a_tenant_with_accounts_read_only_fails_on_the_accounts_row(checks):
    """Issue 11: the guide's Accounts: Write is checked as Write, so Read only fails on that one row."""
    failing = [c for c in checks if c.result.status == "failing"
               and [r.scope for r in c.result.rows if r.verdict == "missing"] == ["connected_account"]]
    assert failing, "the accounts_read story"
    row = next(r for r in failing[0].result.rows if r.scope == "connected_account")
    assert (row.required, row.granted) == ("write", "read")
    assert "Connect → Accounts: Write (now Read)" in failing[0].result.message
