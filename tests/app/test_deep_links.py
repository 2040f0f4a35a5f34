"""A deep link to a tenant that does not exist says so (issue 19.9), and offers the tenant list."""
from __future__ import annotations

from apptest import AppTest

from core import store
from core.ui.text import plain


def test_a_deep_link_to_an_unknown_tenant_says_so(app_env):
    s = store.at(app_env)
    s.upgrade()
    s.get_or_create_tenant("Acme Coffee Roasters")
    store.dispose_engine(app_env)
    at = AppTest.from_file("../../app_pages/tenant.py", default_timeout=60)
    at.query_params["tenant"] = "no-such-tenant"
    at.run()
    assert not at.exception, at.exception
    said = " ".join(plain(w.value) for w in at.warning)
    assert "There is no tenant" in said and "no-such-tenant" in said
    assert [sb.label for sb in at.selectbox] == ["Tenant"]  # the list to choose from instead
