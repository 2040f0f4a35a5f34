"""Demo mode never opens the real database: with the real database at a path nobody can create, every page
runs in demo mode (through the router, with a check, a sample and a transaction), and the path never appears."""
from __future__ import annotations

import pytest
from apptest import AppTest
from sqlalchemy import exc as sa_exc

from core.store.errors import DatabaseFailure
from sandbox import DEMO_KEYS

APP = "../../app.py"
PAGES = [
    "app_pages/check.py", "app_pages/triage.py", "app_pages/tenant.py", "app_pages/fleet.py",
    "app_pages/sample_data.py", "app_pages/sample_transaction.py", "app_pages/verify.py", "app_pages/audit.py",
    "app_pages/about.py",
]


@pytest.fixture
def unusable_real_db(tmp_path, monkeypatch, demo_db):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the real database's folder would be\n")
    real = blocker / "keyhealth.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{real}")
    monkeypatch.setenv("KEYHEALTH_DEMO", "1")
    monkeypatch.setenv("KEYHEALTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KEYHEALTH_FINGERPRINT_SECRET", "test-secret-for-app-tests")
    demo_db(tmp_path / "data", "test-secret-for-app-tests")  # the seeded demo, copied (conftest)
    monkeypatch.setenv("KEYHEALTH_RATE_TEST", "400")
    monkeypatch.setenv("KEYHEALTH_RATE_LIVE", "400")
    monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    return real


def test_the_real_database_really_is_unusable(unusable_real_db):
    from core import runtime
    from core.config import settings

    # The folder cannot be created (OSError), or SQLite cannot open the file it names; the store says so with
    # one sentence (DatabaseFailure) when it wraps either.
    with pytest.raises((OSError, sa_exc.OperationalError, DatabaseFailure)):
        runtime.build(settings(), demo_mode=False).store.list_tenants()


def test_every_page_in_demo_mode_leaves_the_real_database_alone(unusable_real_db):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # a real check, recorded: it must land in the demo database
    at.selectbox(key="kh_tenant_pick").set_value(at.selectbox(key="kh_tenant_pick").options[1]).run()
    at.run()  # the tenant choice first; the key is sent with the form's submit
    at.text_input(key="kh_key_input").input(DEMO_KEYS["healthy"].key)
    [b for b in at.button if b.label == "Check and record"][0].click().run()
    assert not at.exception and at.success
    assert at.session_state["kh_save_problem"] is None
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, page
        assert not [e.value for e in at.error if "database" in e.value.lower()], page
        for b in at.button:
            if b.label in ("Fetch sample data", "Create test charge"):
                b.click().run()
                assert not at.exception, page
                assert not [w.value for w in at.warning if "audit" in w.value.lower()], page
    assert not unusable_real_db.exists()
