"""Chart builders on their own: plain dicts in (the store's shapes), plotly figures out."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from core.engine.result import KEY_STATUSES
from core.ui.charts import STACK_ORDER, STATUS_COLOURS, VERDICT_COLOURS, fleet, tenant


def spec(fig) -> dict:
    return json.loads(fig.to_json())


def mix_day(day: date, **counts) -> dict:
    row = {"day": day, **{s: 0 for s in KEY_STATUSES}}
    row.update(counts)
    row["total"] = sum(row[s] for s in KEY_STATUSES)
    return row


def test_status_mix_stacks_every_status_in_order():
    d0 = date(2026, 1, 1)
    per_day = [mix_day(d0, healthy=3, failing=1), mix_day(d0 + timedelta(days=1), attention=2, invalid=2)]
    s = spec(fleet.status_mix(per_day))
    assert [t["name"] for t in s["data"]] == list(STACK_ORDER)
    assert STACK_ORDER[0] == "healthy" and STACK_ORDER[-1] == "invalid"
    by = {t["name"]: t for t in s["data"]}
    assert by["healthy"]["y"] == [3, 0]
    assert by["failing"]["y"] == [1, 0]
    assert by["invalid"]["y"] == [0, 2]
    assert by["failing"]["marker"]["color"] == STATUS_COLOURS["failing"]
    assert s["layout"]["barmode"] == "stack"
    assert by["healthy"]["x"] == ["2026-01-01", "2026-01-02"]


def test_status_mix_as_shares_sums_to_100():
    per_day = [mix_day(date(2026, 1, 1), healthy=3, failing=1)]
    s = spec(fleet.status_mix(per_day, share=True))
    total = sum(t["y"][0] for t in s["data"])
    assert total == pytest.approx(100)
    assert {t["name"]: t["y"][0] for t in s["data"]}["healthy"] == 75.0


@pytest.mark.parametrize(
    "build",
    [
        lambda: fleet.status_mix([]),
        lambda: fleet.checks_per_day([]),
        lambda: fleet.problem_scopes([], []),
        lambda: fleet.score_distribution([{"from": 0, "to": 9, "tenants": 0}]),
        lambda: tenant.score_over_time([]),
        lambda: tenant.status_timeline([]),
        lambda: fleet.status_counts({s: 0 for s in KEY_STATUSES}),
    ],
)
def test_empty_data_gives_a_figure_that_says_so(build):
    s = spec(build())
    assert s["data"] == []
    assert s["layout"]["annotations"][0]["text"]


def test_problem_scopes_merges_missing_and_excess_most_first():
    missing = [
        {"scope": "charge", "resource": "Charges", "category": "Core", "tenants": 5, "share": 0.5},
        {"scope": "invoice", "resource": "Invoices", "category": "Billing", "tenants": 2, "share": 0.2},
    ]
    excess = [
        {"scope": "customer", "resource": "Customers", "category": "Core", "tenants": 3, "share": 0.3},
        {"scope": "invoice", "resource": "Invoices", "category": "Billing", "tenants": 2, "share": 0.2},
    ]
    s = spec(fleet.problem_scopes(missing, excess))
    m, e = s["data"]
    assert m["name"] == "missing" and e["name"] == "excess"
    assert m["marker"]["color"] == VERDICT_COLOURS["missing"] and e["marker"]["color"] == VERDICT_COLOURS["excess"]
    # plotly draws bottom-up: the most frequent (Charges 5, Invoices 2+2, Customers 3) ends up last
    assert m["y"] == ["Core → Customers", "Billing → Invoices", "Core → Charges"]
    assert m["x"] == [0, 2, 5] and e["x"] == [3, 2, 0]
    assert m["customdata"][-1] == "rak_charge"


def test_problem_scopes_limit():
    rows = [{"scope": f"s{i}", "resource": f"R{i}", "category": "C", "tenants": i + 1, "share": 0} for i in range(20)]
    s = spec(fleet.problem_scopes(rows, [], limit=5))
    assert len(s["data"][0]["y"]) == 5
    assert s["data"][0]["x"] == [16, 17, 18, 19, 20]


def test_checks_per_day_bars_and_tenants_line():
    rows = [{"day": date(2026, 2, 1), "checks": 7, "tenants": 4}, {"day": date(2026, 2, 2), "checks": 3, "tenants": 3}]
    s = spec(fleet.checks_per_day(rows))
    bars, line = s["data"]
    assert bars["type"] == "bar" and bars["y"] == [7, 3]
    assert line["type"] == "scatter" and line["y"] == [4, 3]


def test_score_distribution_labels_and_colours():
    """Coloured by the tenants' latest status, not by score band: an invalid key (score 0) is purple, not failing
    red; an attention key scoring 100 is amber, not healthy green; each status named in the legend."""
    buckets = [{"from": i * 10, "to": 100 if i == 9 else i * 10 + 9, "tenants": i, "statuses": {}}
               for i in range(10)]
    buckets[0]["statuses"] = {"invalid": 0}
    buckets[0]["tenants"] = 0
    buckets[4]["statuses"] = {"failing": 4}
    buckets[9]["statuses"] = {"healthy": 6, "attention": 3}
    for b in buckets:
        b["tenants"] = sum(b["statuses"].values())
    buckets[0]["statuses"], buckets[0]["tenants"] = {"invalid": 2}, 2
    s = spec(fleet.score_distribution(buckets))
    by = {t["name"]: t for t in s["data"]}
    assert list(by) == [x for x in STACK_ORDER if x in ("healthy", "attention", "failing", "invalid")]
    assert by["invalid"]["marker"]["color"] == STATUS_COLOURS["invalid"] and by["invalid"]["y"][0] == 2
    assert by["attention"]["marker"]["color"] == STATUS_COLOURS["attention"] and by["attention"]["y"][-1] == 3
    assert by["healthy"]["y"][-1] == 6 and by["failing"]["y"][4] == 4
    assert by["healthy"]["x"][0] == "0–9" and by["healthy"]["x"][-1] == "90–100"
    assert s["layout"]["barmode"] == "stack"
    assert [sum(t["y"][i] for t in s["data"]) for i in range(10)] == [b["tenants"] for b in buckets]


def test_tenant_charts_end_at_the_last_check_plus_a_small_margin():
    h = history([("healthy", 100)] * 20)  # 19 days of checks
    last = datetime(2026, 3, 20, 9, tzinfo=timezone.utc)
    for fig in (tenant.score_over_time(h), tenant.status_timeline(h)):
        lo, hi = (datetime.fromisoformat(x).replace(tzinfo=timezone.utc) for x in spec(fig)["layout"]["xaxis"]["range"])
        assert last < hi <= last + timedelta(days=1), hi  # never weeks into the future
        assert datetime(2026, 3, 1, 9, tzinfo=timezone.utc) - timedelta(days=1) <= lo


def test_replacement_labels_never_overprint():
    """Key replacements close together: labels go on separate rows, and two labels on one row are far enough
    apart for their text (tenant.LABEL_GAP of the span); the full text is in the hover."""
    h = history([("healthy", 100)] * 30)
    t0 = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
    events = [{"at": t0 + timedelta(days=d, hours=1), "old_masked": "rk_live_…aaaa", "new_masked": "rk_live_…bbbb",
               "mode_changed": d == 3, "account_changed": False} for d in (2, 3, 4, 5, 20)]
    span = timedelta(days=29)
    for fig in (tenant.score_over_time(h, events), tenant.status_timeline(h, events)):
        notes = [a for a in spec(fig)["layout"]["annotations"] if "key replaced" in a["text"]]
        assert notes and all("rk_live_…bbbb" in a["hovertext"] and "UTC" in a["hovertext"] for a in notes)
        for i, a in enumerate(notes):
            for b in notes[i + 1:]:
                if a["yshift"] == b["yshift"]:
                    gap = abs(datetime.fromisoformat(a["x"]) - datetime.fromisoformat(b["x"]))
                    assert gap >= span * tenant.LABEL_GAP, (a, b)
        assert len({a["yshift"] for a in notes}) > 1  # the close ones went to other rows
        assert len(notes) <= len(events)


def test_colour_is_never_the_only_signal_in_tenant_charts():
    h = history([("failing", 64), ("attention", 90), ("healthy", 100)])
    trace = spec(tenant.score_over_time(h))["data"][0]
    assert len(set(trace["marker"]["symbol"])) == 3  # a shape per status, and its word in the hover
    tl = spec(tenant.status_timeline(h))
    names = [t["name"] for t in tl["data"] if t.get("mode") == "markers"]
    assert set(names) == {"failing", "attention", "healthy"}  # the legend names each status


def test_charts_follow_the_theme():
    """No forced white: the chart sits on the page's background (light or dark, as the user chose)."""
    layout = spec(tenant.score_over_time(history([("healthy", 100)] * 3)))["layout"]
    assert layout["paper_bgcolor"] == "rgba(0,0,0,0)" and layout["plot_bgcolor"] == "rgba(0,0,0,0)"


def test_status_counts_worst_first():
    s = spec(fleet.status_counts({"invalid": 1, "failing": 2, "incomplete": 0, "attention": 3, "healthy": 4}))
    assert [t["name"] for t in s["data"]] == ["invalid (1)", "failing (2)", "incomplete (0)", "attention (3)",
        "healthy (4)"]


def history(statuses_scores: list[tuple[str, int]]) -> list[dict]:
    t0 = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
    rows = [
        {"check_id": i + 1, "checked_at": t0 + timedelta(days=i), "status": st, "score": sc,
         "key_masked": "rk_live_…ab12", "source": "dashboard"}
        for i, (st, sc) in enumerate(statuses_scores)
    ]
    return list(reversed(rows))  # the store gives newest first


def test_score_over_time_oldest_first_coloured_by_status():
    h = history([("failing", 64), ("attention", 90), ("healthy", 100)])
    s = spec(tenant.score_over_time(h))
    trace = s["data"][0]
    assert trace["y"] == [64, 90, 100]
    assert trace["x"][0].startswith("2026-03-01")
    assert trace["marker"]["color"] == [STATUS_COLOURS[x] for x in ("failing", "attention", "healthy")]
    assert trace["customdata"][0] == ["failing", "rk_live_…ab12"]


def test_status_timeline_one_trace_per_status_present():
    h = history([("healthy", 100), ("invalid", 0), ("invalid", 0), ("healthy", 100)])
    s = spec(tenant.status_timeline(h))
    markers = {t["name"]: t for t in s["data"] if t.get("mode") == "markers"}
    assert set(markers) == {"healthy", "invalid"}
    assert len(markers["invalid"]["x"]) == 2 and markers["invalid"]["y"] == ["invalid", "invalid"]
    line = s["data"][0]
    assert line["y"] == ["healthy", "invalid", "invalid", "healthy"]
    assert s["layout"]["yaxis"]["categoryarray"] == list(KEY_STATUSES)


def _every_chart():
    """Every chart builder, on data that reaches its traces (not only its empty figure)."""
    from test_sample_units import _charges

    from core.features.sample import build_frame
    from core.ui.charts import payments

    d0 = date(2026, 1, 1)
    per_day = [{**mix_day(d0 + timedelta(days=i), healthy=3, failing=1), "checks": 5, "tenants": 4,
                "unreachable": 1} for i in range(3)]
    scopes = [{"scope": "charge_read", "resource": "Charges", "category": "Core", "tenants": 3}]
    buckets = [{"from": i * 10, "to": 100 if i == 9 else i * 10 + 9, "tenants": 1, "statuses": {"healthy": 1}}
               for i in range(10)]
    h = history([("failing", 64), ("attention", 90), ("healthy", 100)])
    balance = build_frame("balance", [{"available": [{"amount": 12345, "currency": "usd"}],
                                       "pending": [{"amount": 55, "currency": "usd"}]}])
    return {
        "status_mix": fleet.status_mix(per_day), "status_mix share": fleet.status_mix(per_day, share=True),
        "problem_scopes": fleet.problem_scopes(scopes, scopes), "checks_per_day": fleet.checks_per_day(per_day),
        "score_distribution": fleet.score_distribution(buckets),
        "status_counts": fleet.status_counts(dict.fromkeys(KEY_STATUSES, 2)),
        "unreachable_share": fleet.unreachable_share(per_day),
        "lifecycle_counts": fleet.lifecycle_counts({"mode_mismatch": 2, "shared_key": 1}, 3),
        "score_over_time": tenant.score_over_time(h), "status_timeline": tenant.status_timeline(h),
        "daily_volume": payments.daily_volume(_charges()), "daily_count": payments.daily_count(_charges()),
        "success_rate": payments.success_rate(_charges()), "balance": payments.balance_by_currency(balance),
    }


def test_every_chart_passes_plotlys_schema_check():
    """The builders skip plotly's schema check for speed (charts.VALIDATE: about 25 ms of CPU per chart); the check
    runs here instead, on every builder's figure: a misspelt property or a bad value fails this test."""
    import plotly.graph_objects as go

    from core.ui import charts

    assert charts.VALIDATE is False  # the pages' figures are built unchecked: this test is where they are checked
    built = _every_chart()
    assert all(fig.data for fig in built.values()), [name for name, fig in built.items() if not fig.data]
    for name, fig in built.items():
        checked = go.Figure(fig.to_dict())  # plotly's schema check: raises ValueError on a bad property or value
        assert json.loads(checked.to_json()) == json.loads(fig.to_json()), name


def test_the_schema_check_catches_a_bad_property():
    """The test above can fail: a figure built unchecked with a misspelt property is refused by the check."""
    import plotly.graph_objects as go

    from core.ui.charts import bar, figure

    fig = figure(bar(x=[1], y=[2], colour="#000000"))  # unchecked: built without an error
    with pytest.raises(ValueError, match="Invalid property .* 'colour'"):
        go.Figure(fig.to_dict())
