"""Settings are one table (core/config.py SETTINGS) (issue 18.7): every value is typed from it, a value that is not
allowed stops start-up with one sentence naming the variable, the value and what is allowed (never silently the
default), and docs/configuration.md and docs/cli.md are generated and current."""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from apptest import AppTest

from core import config
from core.config import SETTINGS, DatabaseSettings, ProbeSettings, Setting, SettingError, Settings
from core.ui.text import md_escape

ROOT = Path(__file__).resolve().parents[2]

# Per kind: values that are not allowed (besides those below a row's minimum).
BAD = {
    "int": ["lots", "1.5", "nan", "0x10"],
    "float": ["fast", "nan", "inf", "1,5"],
    "bool": ["maybe", "2", "enabled"],
    "url": ["api.stripe.com", "ftp://x.example", "http://"],
}


def _bad_cases() -> list[tuple[Setting, str]]:
    cases = []
    for s in SETTINGS:
        for v in BAD.get(s.kind, []):
            cases.append((s, v))
        if s.minimum is not None:
            cases.append((s, str(s.minimum - 1 if s.kind == "int" else s.minimum - 0.05)))
    return cases


@pytest.mark.parametrize(("row", "value"), _bad_cases(), ids=lambda x: x.env if isinstance(x, Setting) else x)
def test_a_value_that_is_not_allowed_is_refused_in_one_sentence_never_defaulted(row, value):
    with pytest.raises(SettingError) as e:
        Settings.from_env({row.env: value})
    msg = str(e.value)
    assert msg.startswith(row.env + " ") and row.allowed() in msg
    assert msg.count(". ") == 0 and msg.endswith(".") and "\n" not in msg  # one sentence
    if row.secret:
        assert repr(value) not in msg and "not shown" in msg
    else:
        assert repr(value) in msg


def test_a_secret_value_is_never_shown():
    hook = "hooks.slack.example/services/T000/B000/XXXXsecretXXXX"
    with pytest.raises(SettingError) as e:
        Settings.from_env({"KEYHEALTH_ALERT_WEBHOOK": hook})
    assert "XXXXsecretXXXX" not in str(e.value) and "secret" in str(e.value)
    s = Settings.from_env({"KEYHEALTH_ALERT_WEBHOOK": "https://" + hook, "DATABASE_URL": "postgresql://u:pw@h/db",
                           "KEYHEALTH_FINGERPRINT_SECRET": "fp-secret-value"})
    assert "XXXXsecretXXXX" not in repr(s) and "pw@" not in repr(s) and "fp-secret-value" not in repr(s)


def test_allowed_values_are_typed_and_an_empty_value_is_unset():
    s = Settings.from_env({
        "KEYHEALTH_RETRIES": " 0 ", "KEYHEALTH_RATE_TEST": "400", "KEYHEALTH_DEMO": "Yes", "NO_COLOR": "0",
        "KEYHEALTH_ROTATION_DAYS": "30", "KEYHEALTH_DB_BUSY_TIMEOUT_S": "0.5", "STRIPE_API_BASE": "http://127.0.0.1:9",
        "KEYHEALTH_KEYS_FROM": " /opt/src ", "KEYHEALTH_DATA_DIR": "/var/lib/kh", "KEYHEALTH_TIMEOUT_S": "",
        "USER": "ana", "KEYHEALTH_FINGERPRINT_SECRET": " kept as given ",
    })
    assert (s.probe.retries, s.probe.rate_test, s.demo, s.no_color, s.rotation_days) == (0, 400.0, True, True, 30)
    assert isinstance(s.probe.retries, int) and isinstance(s.probe.rate_test, float)
    assert (s.db.busy_timeout_s, s.api_base, s.keys_from, s.data_dir) == (0.5, "http://127.0.0.1:9", "/opt/src",
                                                                          Path("/var/lib/kh"))
    assert s.probe.timeout_s == ProbeSettings().timeout_s  # empty: the default
    assert s.user == "ana" and Settings.from_env({"USER": "ana", "KEYHEALTH_USER": "bo"}).user == "bo"
    assert s.fingerprint_secret == " kept as given "  # a secret is never reshaped: fingerprints would change
    assert Settings.from_env({"KEYHEALTH_DEMO": "off"}).demo is False


def test_every_field_has_exactly_one_row_and_the_defaults_are_written_once():
    fields = {f.name for f in dataclasses.fields(Settings)} - {"probe", "db"}
    fields |= {f"probe.{f.name}" for f in dataclasses.fields(ProbeSettings)}
    fields |= {f"db.{f.name}" for f in dataclasses.fields(DatabaseSettings)}
    attrs = [s.attr for s in SETTINGS]
    assert sorted(attrs) == sorted(fields)
    assert len({s.env for s in SETTINGS}) == len(SETTINGS)
    # Settings and DatabaseSettings hold no defaults of their own: the table's are the only ones
    for cls in (Settings, DatabaseSettings):
        assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   for f in dataclasses.fields(cls)), cls
    # the engine's probe defaults are the table's (its rows point at them)
    d = Settings.from_env({})
    assert d.probe == ProbeSettings()
    assert d.rotation_days == config.DEFAULT_ROTATION_DAYS and d.api_base == config.STRIPE_DEFAULT_API_BASE
    assert config.SECRET_SETTINGS == tuple(s.env for s in SETTINGS if s.from_secrets)


def test_only_core_config_reads_the_environment():
    readers = []
    # keysource.py hands this process's environment on to the key source it starts (plus KEYHEALTH_TENANT): it
    # passes the environment along, it reads no setting from it
    passes_on = {ROOT / "core" / "config.py", ROOT / "core" / "features" / "keysource.py"}
    for folder in ("core", "dashboard", "pages", "app_pages", "sandbox"):
        for path in (ROOT / folder).rglob("*.py"):
            if path not in passes_on and re.search(r"os\.environ|getenv\(", path.read_text()):
                readers.append(str(path.relative_to(ROOT)))
    if re.search(r"os\.environ|getenv\(", (ROOT / "app.py").read_text()):
        readers.append("app.py")
    assert readers == []


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYHEALTH_", "STRIPE_"))}
    env.update(KEYHEALTH_DATA_DIR=os.environ["KEYHEALTH_DATA_DIR"], NO_COLOR="1", **extra)
    return env


def test_the_cli_stops_at_start_with_the_sentence_and_exit_2():
    out = subprocess.run([sys.executable, "-m", "core", "catalogue"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env=_cli_env(KEYHEALTH_RETRIES="lots"))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "error: KEYHEALTH_RETRIES is set to 'lots', which is not allowed; it must be a whole number of at least 0, "
        "or unset for the default (3)."
    ]
    secret = subprocess.run([sys.executable, "-m", "core", "catalogue"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env=_cli_env(KEYHEALTH_ALERT_WEBHOOK="not-a-url-s3cr3t"))
    assert secret.returncode == 2 and "s3cr3t" not in secret.stderr and "KEYHEALTH_ALERT_WEBHOOK" in secret.stderr
    # --help needs no settings
    helped = subprocess.run([sys.executable, "-m", "core", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env=_cli_env(KEYHEALTH_RETRIES="lots"))
    assert helped.returncode == 0


def test_the_dashboard_shows_only_the_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("KEYHEALTH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KEYHEALTH_DEMO", "maybe")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    sentence = str(_err("KEYHEALTH_DEMO", "maybe"))
    assert "'maybe'" in sentence and "0, false, no or off" in sentence
    assert [e.value for e in at.error] == [md_escape(sentence)]
    assert not at.sidebar.children and not at.button and not at.text_input  # nothing else rendered
    assert list(tmp_path.iterdir()) == []  # no database opened, no secret created


def _err(env: str, value: str) -> SettingError:
    try:
        Settings.from_env({env: value})
    except SettingError as e:
        return e
    raise AssertionError("allowed")


def test_generated_docs_are_current():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = (ROOT / "docs" / "configuration.md").read_text()
    for s in SETTINGS:
        assert f"`{s.env}`" in text
    cli = (ROOT / "docs" / "cli.md").read_text()
    for sub in ("check", "recheck", "history", "catalogue", "calibrate", "sandbox", "sample-data", "test-transaction"):
        assert f"### keyhealth {sub}\n" in cli


def test_python_dash_m_core_config_prints_the_configuration_page():
    out = subprocess.run([sys.executable, "-m", "core.config", "--markdown"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == (ROOT / "docs" / "configuration.md").read_text()
