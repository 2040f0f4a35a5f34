"""Every page, fed hostile text from every way in, shows it as text (issue 9, items 2 and 3).

A seeded temporary database (real mode, the project's Stripe sandbox as Stripe) holds tenants named after the
hostile table, with hostile contacts, problems that quote the text (as a Stripe message would) and audit entries;
the sandbox account holds products and charges named after it (sandbox.store.add_hostile_samples). Then every page
app.py routes to runs through app.py with AppTest, and the tenant page also gets the issue's crafted link
`?tenant=Session expired. Sign in again at https://1572395042/sso`.

Every field Streamlit renders as markdown (bodies of markdown, captions, titles, alerts, metric values; labels and
help of widgets and links; progress text) is inspected in the markdown SOURCE the page sent: no autolink, link,
image, HTML, directive, icon, emoji shortcode or maths may be in it, and wherever a hostile text shows, it shows
in its escaped form. tests/e2e/test_text_render.py proves in Chromium that the escaped form renders as plain text.
The downloads are identified by Streamlit's media id (a hash of the bytes) and must hold no live formula.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from apptest import AppTest
from streamlit.runtime.memory_media_file_storage import _calculate_file_id
from support import FAST_ENV
from textcheck import app_pages, dangers, markdown_fields

from core import store
from core.engine.keys import intake
from core.engine.result import KEY_STATUSES, CheckResult, KeyInfo, Row
from core.ui.csv_safe import FORMULA_START, dataset_csv, frame_csv
from core.ui.grid import download_name, grid_csv
from core.ui.text import md_code, md_escape, plain
from sandbox import DEMO_KEYS
from sandbox.store import add_hostile_samples

TIMEOUT = 90
ISSUE_LINK = "Session expired. Sign in again at https://1572395042/sso"
# Valid tenant names (at most 100 characters, no control characters), each hostile in its own way.
HOSTILE_NAMES = [
    ISSUE_LINK,
    "[Log in again](https://evil.example/login)",
    "Visit www.evil.example now",
    "Mail ops@evil.example",
    ":red[Urgent] :material/warning: :blue-badge[Admin]",
    "Refund $x^2$ now $5",
    "<b>x</b><img src=x onerror=alert(1)>",
    "**bold** _it_ ~~s~~ # h1",
    '=HYPERLINK("http://evil.example","Refund")',
    ":smile: <https://evil.example> 2",
]
# Emphasis (**) is how the pages themselves write "**HEALTHY**"; escaped emphasis from user text is checked by
# the escaped-form rule in shown_as_text instead.
OWN_MARKDOWN = (":orange-badge[:material/lock_open: Open access]",)  # app.py's sidebar, a constant


def shown_as_text(at: AppTest, page: str, seen: dict[str, set[str]]) -> None:
    """Assert the rule on every markdown field of the page; note which hostile names it shows (in `seen`)."""
    assert not at.exception, (page, at.exception)
    assert not [e for e in at.error if "Something went wrong" in e.value], page
    for typ, field, source in markdown_fields(at):
        if source.startswith(OWN_MARKDOWN):
            continue
        found = dangers(source, skip=("emphasis",))
        assert not found, f"{page}: {typ}.{field} would render {found}: {source[:300]!r}"
        readable = plain(source)
        for name in HOSTILE_NAMES:
            if name in readable:
                seen.setdefault(name, set()).add(page)
                assert md_escape(name) in source or md_code(name) in source, (
                    f"{page}: {typ}.{field} shows {name!r} unescaped: {source[:300]!r}")


def no_formula(text: str) -> None:
    for row in csv.reader(io.StringIO(text, newline="")):
        for cell in row:
            assert not cell.startswith(FORMULA_START), f"a live formula in the download: {cell!r}"


def download(at: AppTest, label: str):
    found = [b for b in at.get("download_button") if b.proto.label == label]
    assert found, f"no download {label!r} among {[b.proto.label for b in at.get('download_button')]}"
    return found[0].proto


def offers(button_proto, data: bytes | str, mime: str, file_name: str) -> bool:
    """True when the download button offers exactly `data` (Streamlit's media id is a hash of the bytes)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return _calculate_file_id(raw, mime, file_name) in button_proto.url


# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hostile_env(sandbox, tmp_path_factory):
    """Real mode on a seeded SQLite file; the sandbox account of the demo keys holds hostile products/charges."""
    data = tmp_path_factory.mktemp("hostile-pages")
    url = f"sqlite:///{data / 'real.db'}"
    env = {
        "STRIPE_API_BASE": sandbox.url, "DATABASE_URL": url, "KEYHEALTH_DEMO": "0",
        "KEYHEALTH_DATA_DIR": str(data / "data"), "KEYHEALTH_FINGERPRINT_SECRET": "hostile-pages",
        **FAST_ENV,
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        store.at(url).upgrade()
        yield url
        store.dispose_engine(url)


@pytest.fixture(scope="module")
def seeded(hostile_env):
    now = datetime.now(UTC)
    results = {}
    for i, name in enumerate(HOSTILE_NAMES):
        status = KEY_STATUSES[i % len(KEY_STATUSES)]  # statuses of a key: these results have rows (not unreachable)
        for back in (3, 0):  # two checks: drift and a history
            res = CheckResult(
                key=KeyInfo(kind="restricted", mode="test", masked="rk_test_…a1b2", fingerprint="fp_" + "0" * 61),
                status=status, score=100 - 10 * (i % 5), problem=f"Stripe said: {name}", account="acct_1Hostile",
                requests=3, elapsed_s=0.5, checked_at=now - timedelta(days=back, minutes=i),
                rows=[Row(category="Core", resource="Charges", scope="charge_read", required="read",
                          granted="read" if back else "none", verdict="ok" if back else "missing",
                          fix=None if back else f"Set Charges to Read ({name})")],
            )
            store.at(hostile_env).record_check(res, name, source="cli", checked_by="ops@pointai.tech")
            results[name] = res
        t = store.at(hostile_env).get_tenant(name)
        store.at(hostile_env).update_tenant(t["id"], contact=name, notes=name)
        store.at(hostile_env).record_audit("check", who="ops@pointai.tech", tenant=name, outcome=status,
                                              detail=f"{name} score 80 (dashboard)")
    return results


def app(page: str | None = None, state: dict | None = None, **query) -> AppTest:
    at = AppTest.from_file("../../app.py", default_timeout=TIMEOUT)
    for k, v in (state or {}).items():
        at.session_state[k] = v
    at.run()
    if page:
        at.query_params.update(query)
        at.switch_page(page).run()
    return at


# ---------------------------------------------------------------------------------------------------------
def test_every_page_shows_hostile_text_as_text(hostile_env, seeded, sandbox):
    sandbox.reset()
    add_hostile_samples(sandbox.store(DEMO_KEYS["healthy"].account))
    seen: dict[str, set[str]] = {}
    key = intake(DEMO_KEYS["healthy"].key).key
    pages = {p.stem for p in app_pages()}
    assert {"check", "tenant", "triage", "fleet", "audit", "about", "sample_data", "sample_transaction"} <= pages

    for name in HOSTILE_NAMES:
        slug = store.at(hostile_env).get_tenant(name)["slug"]
        result = replace(seeded[name], incidents=[f"Stripe answered 2xx to a write probe: {name}"])
        state = {"kh_result": result, "kh_result_tenant": name, "kh_tenant": name, "kh_key": key}
        # the check page with this tenant's result in the session (banner, problem, what to change, downloads)
        at = app(None, state)
        shown_as_text(at, "check", seen)
        grid = download(at, "Download CSV")
        body = grid_csv(result)
        assert offers(grid, body, "text/csv", download_name(result, name, "csv")), "the grid CSV is not grid_csv()"
        no_formula(body)
        # the tenant's own page, by slug
        at.query_params.clear()
        at.query_params["tenant"] = slug
        at.switch_page("app_pages/tenant.py").run()
        shown_as_text(at, "tenant", seen)
        # the sample pages name the session's tenant
        at.switch_page("app_pages/sample_transaction.py").run()
        shown_as_text(at, "sample_transaction", seen)
        at.switch_page("app_pages/sample_data.py").run()
        shown_as_text(at, "sample_data", seen)

    # the issue's crafted link, and every hostile text as an unknown tenant in the URL
    for raw in HOSTILE_NAMES + [ISSUE_LINK + " ", "no such tenant " + ISSUE_LINK]:
        at = app("app_pages/tenant.py", tenant=raw)
        shown_as_text(at, "tenant?tenant=", seen)
        if raw.startswith("no such tenant"):
            assert at.warning and md_escape(raw) in at.warning[0].value
    at = app("app_pages/tenant.py", tenant=ISSUE_LINK)
    assert at.title[0].value == md_escape(ISSUE_LINK)  # found by its name's slug, shown as text

    for page in ("triage", "fleet", "audit", "about"):
        shown_as_text(app(f"app_pages/{page}.py"), page, seen)

    # sample data read from the hostile Stripe account: tables, reasons, and the downloads
    at = app("app_pages/sample_data.py", {"kh_key": key, "kh_tenant": HOSTILE_NAMES[0]})
    next(b for b in at.button if b.label == "Fetch sample data").click().run()
    shown_as_text(at, "sample_data", seen)
    data = at.session_state["kh_sample_result"]
    products = data.get("products")
    assert '=HYPERLINK("http://evil.example","Refund")' in set(products.frame["name"])
    body = dataset_csv(products)
    assert offers(download(at, "Download Products CSV"), body, "text/csv", "products.csv")
    no_formula(body.decode("utf-8"))
    assert "'=HYPERLINK" in body.decode("utf-8")
    for d in data.datasets:
        if d.state == "loaded":
            no_formula(dataset_csv(d).decode("utf-8"))
    sandbox.reset()

    for name in HOSTILE_NAMES:
        assert {"check", "tenant", "sample_data"} <= seen.get(name, set()), (name, seen.get(name))
        assert "triage" in seen[name], name  # the quick links


def test_audit_download_and_detail(hostile_env, seeded):
    at = app("app_pages/audit.py")
    assert not at.exception, at.exception
    frame = at.dataframe[0].value
    names = set(frame["Tenant"])
    assert set(HOSTILE_NAMES) <= names
    assert not any(str(d).lstrip().startswith("{") for d in frame["Detail"]), "JSON in the Detail column"
    start, end = at.date_input(key="au_period").value
    body = frame_csv(frame)
    assert offers(download(at, "Download audit CSV"), body, "text/csv", f"keyhealth-audit-{start}-{end}.csv")
    no_formula(body)
    assert any(cell == "'" + HOSTILE_NAMES[8] for row in csv.reader(io.StringIO(body, newline="")) for cell in row)


def test_audit_detail_column_reads_as_sentences(hostile_env, seeded, sandbox):
    """A sample-data view and a sample transaction recorded by the pages themselves, then the audit page."""
    sandbox.reset()
    key = intake(DEMO_KEYS["healthy"].key).key
    at = app("app_pages/sample_data.py", {"kh_key": key, "kh_tenant": "Audit Sentences"})
    next(b for b in at.button if b.label == "Fetch sample data").click().run()
    at.switch_page("app_pages/sample_transaction.py").run()
    next(b for b in at.button if b.label == "Create test charge").click().run()
    assert not at.exception, at.exception
    at = app("app_pages/audit.py")
    at.text_input(key="au_tenant").input("Audit Sentences").run()
    frame = at.dataframe[0].value
    details = dict(zip(frame["Action"], frame["Detail"], strict=True))
    assert details["sample_data"].startswith("Read sample data with key rk_test_"), details
    assert "datasets: " in details["sample_data"] and details["sample_data"].endswith(".")
    assert details["sample_transaction"].startswith("Test charge ch_") and " of 1.00 USD (succeeded)" in (
        details["sample_transaction"])
    stored = store.at(hostile_env).list_audit(tenant="Audit Sentences")
    assert all(e["detail"].startswith("{") for e in stored), "the stored detail stays JSON (compatible)"
    sandbox.reset()


# ---------------------------------------------------------------------------------------------------------
# Item 7's smaller ones, on the pages themselves
def test_incomplete_has_one_colour_on_every_page(hostile_env, seeded):
    import json

    from core.ui.palette import STATUS_CELL, STATUS_COLOURS

    name = next(n for n, r in seeded.items() if r.status == "incomplete")
    slug = store.at(hostile_env).get_tenant(name)["slug"]
    blue, (cell_bg, _) = STATUS_COLOURS["incomplete"], STATUS_CELL["incomplete"]
    # the banner on the tenant page and on the check page: st.info (blue), not st.warning (amber)
    at = app("app_pages/tenant.py", tenant=slug)
    assert at.info and "INCOMPLETE" in at.info[0].value and not [w for w in at.warning if "INCOMPLETE" in w.value]
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert blue in figs[0]["data"][0]["marker"]["color"]
    assert next(t for t in figs[1]["data"] if t["name"] == "incomplete")["marker"]["color"] == blue
    at = app(None, {"kh_result": seeded[name], "kh_result_tenant": name})
    assert at.info and "INCOMPLETE" in at.info[0].value
    # the triage table's status cell and the fleet chart
    at = app("app_pages/triage.py")
    assert cell_bg in at.dataframe[0].proto.arrow_data.styler.styles
    assert "#e9ecef" not in at.dataframe[0].proto.arrow_data.styler.styles  # the grey it had
    at = app("app_pages/fleet.py")
    mix = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert next(t for t in mix["data"] if t["name"] == "incomplete")["marker"]["color"] == blue


def test_a_tenant_with_one_check_gets_a_readable_time_axis(hostile_env):
    import json

    res = CheckResult(key=KeyInfo(kind="restricted", mode="test", masked="rk_test_…c3d4", fingerprint="fp_1"),
                      status="healthy", score=100, rows=[], requests=1, elapsed_s=0.1, checked_at=datetime.now(UTC))
    store.at(hostile_env).record_check(res, "Single Check Ltd", source="cli", checked_by=None)
    at = app("app_pages/tenant.py", tenant=store.at(hostile_env).get_tenant("Single Check Ltd")["slug"])
    assert not at.exception, at.exception
    for fig in (json.loads(c.proto.spec) for c in at.get("plotly_chart")):
        axis = fig["layout"]["xaxis"]
        lo, hi = (datetime.fromisoformat(x) for x in axis["range"])
        assert hi - lo >= timedelta(days=2) and lo <= res.checked_at <= hi
        assert axis["dtick"] == 86_400_000 and axis["tickformat"] == "%b %d, %Y"


def test_sample_tables_say_their_currency(hostile_env, sandbox):
    sandbox.reset()
    at = app("app_pages/sample_data.py", {"kh_key": intake(DEMO_KEYS["healthy"].key).key})
    next(b for b in at.button if b.label == "Fetch sample data").click().run()
    assert not at.exception, at.exception
    money = re.compile(r"^-?\d{1,3}(,\d{3})*(\.\d{2,3})? [A-Z]{3}$")
    tables = {tuple(df.value.columns): df.value for df in at.dataframe}
    charges = next(v for k, v in tables.items() if "amount_refunded" in k)
    assert all(money.match(a) for a in charges["amount"]), list(charges["amount"])[:5]
    assert set(charges["currency"]) <= {"USD", "EUR"}
    balance = next(v for k, v in tables.items() if k == ("currency", "available", "pending"))
    assert all(money.match(a) for a in balance["available"])
    data = at.session_state["kh_sample_result"]
    assert data.get("charges").frame["amount"].dtype.kind in "if"  # the data keeps Stripe's smallest units
    sandbox.reset()
