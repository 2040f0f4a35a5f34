"""Issue 19.7's reading aids (core/ui/check_view.py): progress in the grid's totals and words with the time left,
what to change first, the similar-name suggestion. The progress test sweeps the project's Stripe sandbox."""
from __future__ import annotations

from collections import Counter

from support import fast_probe

from core.engine.check import check_key, grid_plan
from core.ui.check_view import first_change, group_counts, progress_text, row_word, similar_tenants, time_left
from sandbox import DEMO_KEYS

FAST = fast_probe(timeout_s=2.0)


def test_progress_counts_in_the_grids_totals_and_words(sandbox, sandbox_client):
    plan = grid_plan()
    seen = Counter(row_word(r) for r in plan)
    texts = []

    def on_progress(row, done, total):
        seen[row_word(row)] += 1
        texts.append(progress_text(seen, len(plan) + done, len(plan) + total, done, total, 0.5 * done))

    r = check_key(DEMO_KEYS["missing"].key, client=sandbox_client, settings=FAST, on_progress=on_progress)
    n = len(r.rows)
    assert texts[-1].startswith(f"{n}/{n} permissions · "), texts[-1]
    grid = Counter(row_word(x) for x in r.rows)
    assert seen == grid, "the bar's counts are the grid's"
    assert f"{grid['missing']} missing" in texts[-1] and f"{grid['not_applicable']} not applicable" in texts[-1]
    assert "not_applicable" not in " ".join(texts)
    assert "left" in texts[0] and "left" not in texts[-1]


def test_time_left_from_the_pace_so_far():
    assert time_left(0, 10, 0.0) is None
    assert time_left(5, 10, 5.0) == "about 5 s left"
    assert time_left(9, 10, 1.0) == "less than a second left"
    assert time_left(10, 10, 3.0) is None


def test_similar_names_offer_the_existing_tenant():
    names = ["Northwind Bikes", "Acme Coffee Roasters", "Globex"]
    assert similar_tenants("Northwind Bike", names) == ["Northwind Bikes"]
    assert similar_tenants("northwind  bikes!", names) == [], "the same name spelt otherwise is the tenant itself"
    assert similar_tenants("Initech", names) == []
    assert similar_tenants("Acme", names) == ["Acme Coffee Roasters"]
    assert similar_tenants("", names) == []


def test_first_change_and_group_counts(make_result):
    r = make_result("failing", 17, [("charge_write", "read", "missing"), ("invoice_write", "none", "missing"),
                                    ("customer_read", "read", "ok")])
    assert first_change(r) == "Set Core → Resource charge_write to Write (and 1 more change below)."
    assert group_counts(r.rows, problems_only=True) == [("Core", 2)]
    assert group_counts(r.rows, problems_only=False) == [("Core", 3)]
    healthy = make_result("healthy", 100, [("charge_write", "write", "ok")])
    assert first_change(healthy).startswith("Nothing")
