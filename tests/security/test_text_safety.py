"""User text is only ever text, and CSV cells never start a formula (issue 9, items 2 and 3), plus the smaller
presentation fixes of item 7: currency units in the sample tables, audit details as sentences, a readable time
axis for a tenant with one check, and one colour for "incomplete".

Unit tests of core/ui (text, csv_safe, palette, money, audit, charts.tenant) and of every CSV writer: the grid,
the sample data read from the sandbox (a product named =HYPERLINK(...) in the tenant's own Stripe account), the
audit download and the CLI's tables. Which markdown survives in a real browser is tests/e2e/test_text_render.py;
every page fed hostile text is tests/security/test_hostile_pages.py.
"""
from __future__ import annotations

import colorsys
import csv
import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from support import fast_probe
from textcheck import HOSTILE, dangers

from core.engine.result import STATUSES, Row
from core.ui.csv_safe import FORMULA_START, dataset_csv, frame_csv, safe_cell, safe_frame
from core.ui.text import WORD_JOINER, md_code, md_escape, plain


# ---------------------------------------------------------------------------------------------------------
# Markdown: what Streamlit would read as something other than text (tests/textcheck.py)
@pytest.mark.parametrize("text", HOSTILE)
def test_md_escape_leaves_nothing_to_interpret(text):
    out = md_escape(text)
    assert dangers(out) == [], (text, out)
    assert "\n" not in out and "\r" not in out
    # and it reads as the text itself (line breaks as spaces)
    assert plain(out) == re.sub(r"[\r\n]+", " ", text)


def test_the_danger_detector_can_fail():
    for text in HOSTILE[:16]:
        assert dangers(text), f"the detector misses {text!r}"


def test_md_escape_breaks_autolinks_with_an_invisible_joiner():
    assert md_escape("https://1572395042/sso") == "https\\:" + WORD_JOINER + "//1572395042/sso"
    assert md_escape("www.x.example") == "www" + WORD_JOINER + "\\.x\\.example"
    assert md_escape("a@b.example") == "a@" + WORD_JOINER + "b\\.example"
    assert md_escape(":material/home:") == "\\:" + WORD_JOINER + "material/home\\:"  # an icon is found in the text
    assert md_escape("Note: 10:30") == "Note\\: 10\\:30"  # no joiner where no link or icon could start
    assert md_escape("plain name") == "plain name"
    assert md_escape(None) == ""
    assert md_escape("ctrl\x00\x07\x1b[31m") == "ctrl\\[31m"


def test_md_code_holds_backticks():
    assert md_code("rk_test_…a1b2") == "`rk_test_…a1b2`"
    assert md_code("a`b") == "``a`b``"
    assert md_code("`x`") == "`` `x` ``"
    assert md_code(None) == "" and md_code("") == ""
    assert md_code("two\nlines") == "`two lines`"


def test_grid_keeps_md_escape_for_older_imports():
    from core.ui import grid

    assert grid.md_escape is md_escape  # one function, one place (core/ui/text.py)


# ---------------------------------------------------------------------------------------------------------
# CSV: OWASP's rule
ISSUE_CELL = '=HYPERLINK("http://evil.example","Refund")'


@pytest.mark.parametrize("value", [ISSUE_CELL, "+1+1", "-2+3", "@SUM(1)", "\t=1", "\r=1", "\n=1", "＝1+1"])
def test_safe_cell_prefixes_a_quote(value):
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["Refund", " =1 (not first)", "a=b", "", None, -5, 3.5, True, "'=already"])
def test_safe_cell_leaves_the_rest(value):
    assert safe_cell(value) == value


def test_frame_csv_writes_the_issue_cell_as_text():
    frame = pd.DataFrame({"name": [ISSUE_CELL, "Plain"], "amount": [-500, 1200], "note": [None, "-x"]})
    text = frame_csv(frame)
    assert '"\'=HYPERLINK(""http://evil.example"",""Refund"")"' in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["name", "amount", "note"]
    assert rows[1] == ["'" + ISSUE_CELL, "-500", ""]  # the number stays a number
    assert rows[2] == ["Plain", "1200", "'-x"]
    assert frame["name"][0] == ISSUE_CELL  # the frame itself is not changed
    assert list(safe_frame(pd.DataFrame({"=x": [1]})).columns) == ["'=x"]


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_a_line_break_inside_a_cell_starts_no_row(sep):
    text = frame_csv(pd.DataFrame({"description": ["Refund" + sep + ISSUE_CELL], "n": [1]}))
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [["description", "n"], ["Refund" + sep + ISSUE_CELL, "1"]]
    assert text.splitlines()[0] == "description,n" and text.endswith("\r\n")


def assert_no_formula_cell(text: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_START), f"a live formula in the CSV: {cell!r}"
    return rows


def test_grid_csv_is_neutralised(make_result):
    from core.ui.grid import grid_csv

    rows = [
        Row(category="=cmd|' /C calc'!A0", resource="@SUM(1)", scope="charge_read", required="read",
            granted="unknown", verdict="unknown", reason="-1+1 unexpected answer from Stripe"),
        Row(category="Core", resource="Charges", scope="charge_write", required="write", granted="read",
            verdict="missing", fix=ISSUE_CELL),
    ]
    # Text no catalogue has (forged on a real result): the CSV neutralises whatever a cell holds.
    text = grid_csv(replace(make_result(account="+acct"), rows=rows))
    rows_out = assert_no_formula_cell(text)
    assert "'" + ISSUE_CELL in rows_out[2] and rows_out[1][3] == "'+acct"


def test_sample_data_csv_from_a_hostile_stripe_account(sandbox, sandbox_client):
    from core.features.sample import fetch_sample_data
    from sandbox import DEMO_KEYS
    from sandbox.store import HOSTILE_TEXT, add_hostile_samples

    sandbox.reset()
    add_hostile_samples(sandbox.store(DEMO_KEYS["healthy"].account))
    fast = fast_probe(concurrency=4)
    data = fetch_sample_data(DEMO_KEYS["healthy"].key, client=sandbox_client, settings=fast)
    products, charges = data.get("products"), data.get("charges")
    assert products is not None and charges is not None
    assert ISSUE_CELL in set(products.frame["name"])  # the frame keeps Stripe's text as it is
    assert ISSUE_CELL in set(charges.frame["description"])
    for d in data.datasets:
        assert_no_formula_cell(dataset_csv(d).decode("utf-8"))
    text = dataset_csv(products).decode("utf-8")
    for hostile in HOSTILE_TEXT:
        if hostile.startswith(FORMULA_START):
            cells = [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]
            assert any(cell == "'" + hostile for cell in cells), hostile
    sandbox.reset()


def test_cli_history_table_names_no_formula(core_cli, tmp_path):
    from sandbox import DEMO_KEYS

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    p = core_cli("check", "--tenant", ISSUE_CELL, key=DEMO_KEYS["healthy"].key, DATABASE_URL=db)
    assert p.returncode == 0, p.stderr
    h = core_cli("history", "--tenant", ISSUE_CELL, DATABASE_URL=db)
    assert h.returncode == 0, h.stderr
    assert h.stdout.splitlines()[0].startswith("'" + ISSUE_CELL + " (")
    j = json.loads(core_cli("history", "--tenant", ISSUE_CELL, "--json", DATABASE_URL=db).stdout)
    assert j["tenant"]["name"] == ISSUE_CELL  # JSON is data: verbatim
    r = core_cli("recheck", "--csv", "-",
        stdin=f'"{ISSUE_CELL.replace(chr(34), chr(34) * 2)}",{DEMO_KEYS["healthy"].key}\n',
                 DATABASE_URL=db)
    line = next(x for x in r.stdout.splitlines() if x.strip().startswith("1 "))
    assert line.split(None, 1)[1].startswith("'=HYPERLINK"), r.stdout


# ---------------------------------------------------------------------------------------------------------
# One colour per status (core/ui/palette.py): grid, triage, charts, banners, CLI
def _hue(hex_colour: str) -> float:
    r, g, b = (int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360


STREAMLIT_ALERT_HUE = {"success": 134, "info": 209, "warning": 45, "error": 0}  # Streamlit's light theme


def test_every_status_has_one_colour_family():
    from core.ui import palette
    from core.ui.charts import STATUS_COLOURS

    assert STATUS_COLOURS is palette.STATUS_COLOURS  # the charts use the palette itself
    for status in STATUSES:
        chart, bg, fg, banner = palette.STATUS_PALETTE[status]
        hues = [_hue(chart), _hue(bg), _hue(fg)]
        spread = max(min(abs(a - b), 360 - abs(a - b)) for a in hues for b in hues)
        assert spread < 40, (status, hues)
        if status != "invalid":  # Streamlit has no purple alert: invalid is red like failing, and says INVALID
            alert = STREAMLIT_ALERT_HUE[banner]
            assert min(abs(_hue(chart) - alert), 360 - abs(_hue(chart) - alert)) < 40, (status, banner)
    assert palette.STATUS_BANNER["incomplete"] == "info"
    assert palette.status_css("incomplete") == "background-color: #e8f3fc; color: #004280"


def test_incomplete_is_blue_in_the_cli_too():
    from core.ui import palette

    assert palette.TERMINAL_SGR["incomplete"] == "34"  # the CLI paints with the palette (core/cli/render.py)


# ---------------------------------------------------------------------------------------------------------
# Currency units
def test_money_in_major_units_with_the_code():
    from core.ui.money import display_frame, money

    assert money(1900, "usd") == "19.00 USD"
    assert money(123456, "eur") == "1,234.56 EUR"
    assert money(1000, "jpy") == "1,000 JPY"
    assert money(1250, "kwd") == "1.250 KWD"
    assert money(-500, "usd") == "-5.00 USD"
    assert money(None, "usd") == "" and money(float("nan"), "usd") == ""
    assert money(700, None) == "7.00"
    frame = pd.DataFrame({"id": ["ch_1", "ch_2"], "amount": [1900, 500], "amount_refunded": [0, None],
                          "currency": ["usd", "jpy"]})
    shown = display_frame("charges", frame)
    assert list(shown["amount"]) == ["19.00 USD", "500 JPY"]
    assert list(shown["amount_refunded"]) == ["0.00 USD", ""]
    assert list(shown["currency"]) == ["USD", "JPY"]
    assert list(frame["amount"]) == [1900, 500]  # the data keeps Stripe's units
    assert display_frame("products", frame) is frame


def test_every_amount_column_exists():
    from core.features.sample import columns
    from core.ui.money import AMOUNT_COLUMNS

    for name, cols in AMOUNT_COLUMNS.items():
        assert set(cols) <= set(columns(name)) and "currency" in columns(name), name


# ---------------------------------------------------------------------------------------------------------
# Audit details as sentences
def test_audit_details_are_sentences():
    from core.ui.audit import detail_sentence

    assert detail_sentence("check", "healthy", "rk_test_…a1b2 score 80 (dashboard)") == (
        "Checked key rk_test_…a1b2: score 80/100 on the dashboard.")
    assert detail_sentence("check", "healthy", "rk_test_…a1b2 score 100") == "Checked key rk_test_…a1b2: score 100/100."
    key = {"kind": "restricted", "mode": "test", "masked": "rk_test_…a1b2", "fingerprint": "x"}
    sd = json.dumps({"key": key, "states": {"balance": "loaded", "charges": "loaded", "invoices": "not_permitted",
                                            "products": "failed", "prices": "empty"}})
    assert detail_sentence("sample_data", "failed", sd) == (
        "Read sample data with key rk_test_…a1b2 (test mode); datasets: 2 loaded, 1 empty, "
        "1 not permitted (Invoices), 1 failed (Products).")
    tx = json.dumps({"source": "dashboard", "key": key, "problem": None,
                     "charge": {"id": "ch_1", "amount": 500, "currency": "usd", "status": "succeeded"},
                     "balance_transaction": "txn_1", "steps": [], "replayed": True})
    assert detail_sentence("sample_transaction", "passed", tx) == (
        "Test charge ch_1 of 5.00 USD (succeeded) with key rk_test_…a1b2 (test mode) on the dashboard "
        "(the same charge again: same idempotency key); balance transaction txn_1.")
    refused = json.dumps({"source": "cli", "key": key, "problem": "This is a live-mode key.", "charge": None})
    assert detail_sentence("sample_transaction", "refused", refused) == (
        "Refused before any request with key rk_test_…a1b2 (test mode) from the command line: This is a live-mode key.")
    failed = json.dumps({"source": "dashboard", "key": key, "problem": "The key lacks Charges Write.", "charge": None})
    assert detail_sentence("sample_transaction", "failed", failed) == (
        "No test charge with key rk_test_…a1b2 (test mode) on the dashboard: The key lacks Charges Write.")
    assert detail_sentence("sample_transaction", "failed", '{"source": "cli", "ke') == (
        "Sample transaction failed (the stored detail is incomplete).")
    assert detail_sentence("view", "ok", "opened the page") == "opened the page"
    assert detail_sentence("check", "ok", None) == ""


# ---------------------------------------------------------------------------------------------------------
# A tenant with one check
def _one(at: datetime, status: str = "healthy", score: int = 100) -> dict:
    return {"checked_at": at, "status": status, "score": score, "key_masked": "rk_test_…a1b2", "source": "cli"}


@pytest.mark.parametrize("gap", [None, timedelta(minutes=3)])
def test_one_check_gets_a_readable_time_axis(gap):
    from core.ui.charts import tenant

    t0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    history = [_one(t0)] + ([_one(t0 + gap, "attention", 80)] if gap else [])
    for fig in (tenant.score_over_time(history), tenant.status_timeline(history)):
        axis = fig.layout.xaxis
        assert axis.range is not None, "plotly would autorange a few milliseconds around one point"
        lo, hi = (pd.Timestamp(x) for x in axis.range)
        assert lo <= pd.Timestamp(t0) - timedelta(hours=12) and hi >= pd.Timestamp(t0) + timedelta(hours=12)
        assert axis.tickformat and "%S" not in axis.tickformat and axis.dtick == 86_400_000


def test_spread_out_checks_end_at_the_last_check():
    """Issue 19.8: no autorange weeks into the future; the axis spans the checks plus a small margin."""
    from core.ui.charts import tenant

    t0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    fig = tenant.score_over_time([_one(t0), _one(t0 + timedelta(days=3))])
    lo, hi = (pd.Timestamp(x) for x in fig.layout.xaxis.range)
    assert pd.Timestamp(t0) > lo >= pd.Timestamp(t0) - timedelta(hours=12)
    assert pd.Timestamp(t0 + timedelta(days=3)) < hi <= pd.Timestamp(t0 + timedelta(days=3, hours=12))


def test_stripe_text_in_payment_charts_is_no_html():
    from core.ui.charts import payments
    from core.ui.text import plotly_text

    evil = "<a href='https://evil.example'>x</a>%{y}"
    assert plotly_text(evil) == "&lt;a href='https://evil.example'&gt;x&lt;/a&gt;&#37;{y}"
    day = pd.Timestamp("2026-11-03", tz="UTC")
    charges = pd.DataFrame({"id": ["ch_1", "ch_2"], "created": [day, day], "amount": [500, 700],
                            "currency": ["usd", "<b>x"], "status": [evil, "succeeded"]})
    for fig in (payments.daily_volume(charges), payments.daily_count(charges)):
        spec = json.loads(fig.to_json())
        names = [t["name"] for t in spec["data"]]
        assert plotly_text(evil) in names and evil not in json.dumps(spec)
        assert "<b>x" not in json.dumps(spec["layout"]).lower()
    bal = payments.balance_by_currency(pd.DataFrame({"currency": ["<b>x"], "available": [1], "pending": [0]}))
    assert list(json.loads(bal.to_json())["data"][0]["x"]) == ["&lt;B&gt;X"]
