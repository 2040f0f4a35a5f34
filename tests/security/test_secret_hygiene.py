"""The key is a secret: run every flow with a distinctive canary key, then look for it everywhere.

Two canaries, random per run (so any hit is a real leak, never a leftover): a test key and a live key, each
registered in the sandbox with exactly the healthy demo key's permissions. Every flow is run with them: the CLI
(check, check --tenant --json, recheck, history, sample-data, test-transaction; STRIPE_LOG=debug so the stripe SDK
logs every request), the same flows in-process with the root logger at DEBUG (stripe's logger, which prints every
URL with its query string, included; the engine's transport, core.engine.wire, logs nothing), and the dashboard via
AppTest (check page with the key pasted, sample data, sample transaction, tenant, triage, fleet, about; the download
buttons' bytes). Then the full key and the middle 20 characters of its body are searched in: the CLI's stdout and
stderr, every log record, the SQLite database and its -wal/-shm, KEYHEALTH_DATA_DIR (recursively), HOME (so
~/.streamlit and Streamlit's cache folders), files written to the temp directory during the run, every rendered
element of every page, every downloaded file and the session state beyond the key's own places. The sandbox itself
keeps only a key id: its request log, created objects and writes must not hold the key either (the Authorization
header is the one place it travels).

Every flow runs with the sandbox's echo fault on (issue 17 item 2): each error answer quotes the key, whole, glued
after `%3D` and after a word, cut short and in pieces, as some real Stripe 400/404 answers echo the request. A leak
is then ANY run of 8 characters of a key (its public prefix `rk_test_` alone excepted): the one redaction step
(core.engine.redact) must catch every one before it is printed, logged, stored, alerted or shown.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import pickle
import re
import secrets
import string
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from cli_process import run_core
from support import FAST_ENV
from webhook import Webhook

from core import store
from sandbox import DEMO_KEYS, DEMO_LIVE_ACCOUNT, DEMO_TEST_ACCOUNT

ROOT = Path(__file__).resolve().parents[2]
BASE62 = string.digits + string.ascii_letters
TENANT = "Hygiene Ltd"


CANARY_HEAD = "HygieneCanary"


def make_canary(mode: str) -> str:
    head = f"rk_{mode}_{CANARY_HEAD}{mode.capitalize()}"
    return head + "".join(secrets.choice(BASE62) for _ in range(100 - len(head)))


WINDOW = 12  # any 12 characters in a row of the canary's random part is a leak (the masked form shows 4)


RUN = 8  # with the echo fault on, any 8 characters in a row of a key is a leak (core.engine.redact.RUN)


def needles(key: str) -> list[str]:
    """The full key, the middle 20 characters of its body, the canary's marker, every 12-character window
    of its random part (so a leak of any piece, say the last 30 characters, is found too), and every run of
    8 characters of the key except its public prefix alone (rk_test_, which every masked key shows)."""
    body = key[len("rk_test_"):]
    mid = len(body) // 2
    rand = key[len("rk_test_") + len(CANARY_HEAD) + len("Test"):]  # after rk_test_HygieneCanaryTest
    return ([key, body[mid - 10:mid + 10], CANARY_HEAD] + [rand[i:i + WINDOW] for i in range(len(rand) - WINDOW + 1)]
            + [key[i:i + RUN] for i in range(1, len(key) - RUN + 1)])


@functools.cache
def _encoded_needles(keys: tuple[str, ...]) -> tuple[tuple[bytes, str], ...]:
    """Every key's needles as bytes, each with how a hit is named (computed once per set of keys)."""
    return tuple(dict.fromkeys((n.encode(), n[:24] + "…") for k in keys for n in needles(k)))


def leaks(text: str | bytes, keys) -> list[str]:
    """Which needles of which keys occur in `text`."""
    blob = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return sorted({name for n, name in _encoded_needles(tuple(keys)) if n in blob})


def scan_tree(root: Path, keys, *, since: float | None = None, max_bytes: int = 64 << 20) -> tuple[int, list[str]]:
    """(files read, hits) for every readable regular file under root (optionally only those modified since).

    Walked with os.scandir: a directory entry says whether it is a file or a link without a system call, so only
    regular files are stat'ed (the temp directory of a busy machine holds hundreds of thousands of them)."""
    n, hits = 0, []
    dirs = [str(root)]
    while dirs:
        try:  # a directory may vanish while it is walked (other processes use the temp directory too)
            with os.scandir(dirs.pop()) as entries:
                listed = list(entries)
        except OSError:
            continue
        for entry in listed:
            try:
                if entry.is_dir(follow_symlinks=False):
                    dirs.append(entry.path)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
                if (since is not None and st.st_mtime < since) or st.st_size > max_bytes:
                    continue
                with open(entry.path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            n += 1
            hits += [f"{entry.path}: {h}" for h in leaks(data, keys)]
    return n, hits


_PLAIN_RECORD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)


class RecordAll(logging.Handler):
    """Keeps every record, formatted with its arguments, extras and traceback."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string still counts: keep its raw parts
            msg = f"{record.msg!r} % {record.args!r}"
        extra = {k: v for k, v in record.__dict__.items() if k not in _PLAIN_RECORD}
        exc = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        self.texts.append(
            f"{record.name} {record.levelname} {msg} {record.args!r} {extra!r} {exc} {record.stack_info or ''}")


@pytest.fixture
def all_logs(caplog):
    """The root logger at DEBUG with a handler keeping everything, plus caplog at DEBUG."""
    root = logging.getLogger()
    handler = RecordAll()
    old = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def clear_faults(sandbox) -> None:
    """Every fault gone but the echo: each error answer keeps quoting the key."""
    sandbox.faults.clear()
    sandbox.faults.echo()


@pytest.fixture
def canaries(sandbox):
    """A test and a live canary key, registered in the sandbox with the healthy demo key's permissions, and the
    echo fault on (every error answer quotes the key)."""
    sandbox.reset()
    perms = DEMO_KEYS["healthy"].permissions
    test, live = make_canary("test"), make_canary("live")
    ids = {
        sandbox.add_key(test, perms, "test", account=DEMO_TEST_ACCOUNT),
        sandbox.add_key(live, perms, "live", account=DEMO_LIVE_ACCOUNT),
    }
    clear_faults(sandbox)
    try:
        yield test, live, ids
    finally:
        sandbox.remove_key(test)
        sandbox.remove_key(live)
        sandbox.faults.clear()


@pytest.fixture
def more_canaries(sandbox, canaries):
    """Two more test canaries: one with no permission at all (every probe refused), one revoked (401)."""
    bare, revoked = make_canary("test"), make_canary("test")
    ids = {sandbox.add_key(bare, set(), "test", account=DEMO_TEST_ACCOUNT),
           sandbox.add_key(revoked, DEMO_KEYS["healthy"].permissions, "test", state="revoked",
                           account=DEMO_TEST_ACCOUNT)}
    try:
        yield bare, revoked, ids
    finally:
        sandbox.remove_key(bare)
        sandbox.remove_key(revoked)


@pytest.fixture
def hook():
    h = Webhook(raw=True)  # what alerts post, as bytes
    yield h
    h.close()


def assert_sandbox_kept_only_key_ids(sandbox, keys, ids) -> None:
    log = sandbox.requests
    assert log, "the flows should have reached the sandbox"
    known = {r.key_id for r in log if r.key_id is not None}  # faults answer before the key is looked at
    assert known and known <= ids  # the sandbox knew the key only by its id
    dumped = json.dumps([asdict(r) for r in log]) + json.dumps(sandbox.created, default=str) + json.dumps(
        sandbox.writes, default=str)
    assert leaks(dumped, keys) == [], "the sandbox's log, created objects or writes hold the key"


def run_cli(args, sandbox, tmp_path, *, key=None, stdin="", env=None):
    e = {k: v for k, v in os.environ.items()
         if k not in ("STRIPE_KEY", "DATABASE_URL", "KEYHEALTH_DATA_DIR", "KEYHEALTH_FINGERPRINT_SECRET")}
    e.update(
        STRIPE_API_BASE=sandbox.url, KEYHEALTH_DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'hygiene.db'}", HOME=str(tmp_path / "home"),
        KEYHEALTH_RATE_TEST="400", KEYHEALTH_RATE_LIVE="400", KEYHEALTH_BACKOFF_S="0.01", NO_COLOR="1",
        STRIPE_LOG="debug", PYTHONWARNINGS="always",
    )
    if key is not None:
        e["STRIPE_KEY"] = key
    e.update(env or {})
    p = run_core(args, cwd=ROOT, env=e, input=stdin, text=True, timeout=180)
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    return p


# ---------------------------------------------------------------------------------------------------------
# The CLI


def test_cli_flows_never_print_log_or_store_the_key(sandbox, canaries, more_canaries, hook, tmp_path):
    test, live, ids = canaries
    bare, revoked, more_ids = more_canaries
    ids = ids | more_ids
    keys = (test, live, bare, revoked)
    (tmp_path / "home").mkdir()
    started = time.time() - 1
    csv = f"tenant,key\n{TENANT},{test}\n{TENANT} Live,{live}\nBad\u202eName,{test}\n{TENANT},rk_test_\n"
    # a key source printing the keys, and one failing with keys on stderr (glued after %3D and a word, cut); the
    # keys reach them in the environment, so no file holds them
    source = tmp_path / "source.py"
    source.write_text("import os, sys\nsys.stdout.write(os.environ['HY_OUT'])\nsys.stderr.write(os.environ['HY_ERR'])\n"
                      "sys.exit(int(os.environ['HY_EXIT']))\n")
    webhook = {"KEYHEALTH_ALERT_WEBHOOK": hook.url}
    good_source = {"HY_OUT": f"{TENANT} Source,{test}\n{TENANT} Bare,{bare}\n", "HY_ERR": "", "HY_EXIT": "0",
                   **webhook}
    failing_source = {"HY_OUT": f"{TENANT},{test}\n", "HY_EXIT": "3",
                      "HY_ERR": f"vault: GET /v1?token%3D{test} word{bare} cut {live[:15]}\n"}
    runs = [
        (["check", "--tenant", TENANT, "--json"], {"key": test}, 0),
        (["check"], {"stdin": f"  '{test}'\n"}, 0),  # the readable table, key on standard input
        (["check", "--tenant", TENANT, "--json"], {"key": live}, 0),
        (["check", "--json"], {"stdin": f"Bearer {test}"}, 0),
        (["check", test], {}, 2),  # the key as an argument: refused, and never echoed
        (["check", "--tenant", "Bad\u202eName", "--json"], {"key": test}, 2),
        (["recheck", "--csv", "-", "--json"], {"stdin": csv}, 1),
        (["recheck", "--csv", "-"], {"stdin": csv}, 1),
        (["history", "--tenant", TENANT, "--json"], {}, 0),
        (["history", "--tenant", TENANT], {}, 0),
        (["history", "--tenant", f"{TENANT} Live"], {}, 0),
        (["sample-data", "--json"], {"key": test}, 0),
        (["sample-data"], {"key": live}, 0),
        (["test-transaction", "--json", "--tenant", TENANT], {"key": test}, 0),
        (["test-transaction", "--tenant", TENANT], {"key": test}, 0),  # the same charge again (idempotent)
        (["test-transaction", "--json", "--tenant", TENANT], {"key": live}, 1),  # refused: a live key
        # Stripe's 400 (amount too small) quotes the key: printed and audited redacted
        (["test-transaction", "--amount", "10", "--tenant", TENANT], {"key": test}, 1),
        (["test-transaction", "--json", "--amount", "10"], {"key": test}, 1),
        # every probe refused (403s quoting the key), then a revoked key (401) on a healthy tenant: an alert
        (["check", "--tenant", f"{TENANT} Bare"], {"key": bare}, 1),
        (["sample-data"], {"key": bare}, 0),
        (["test-transaction", "--tenant", f"{TENANT} Bare"], {"key": bare}, 1),
        (["check", "--tenant", TENANT], {"key": revoked, "env": webhook}, 1),
        (["check", "--json"], {"key": revoked}, 1),
        (["sample-data", "--json"], {"key": revoked}, 1),
        (["test-transaction"], {"key": revoked}, 1),
        (["recheck", "--keys-from", f"{sys.executable} {source}"], {"env": good_source}, 1),
        (["recheck", "--keys-from", f"{sys.executable} {source}", "--json"], {"env": failing_source}, 2),
        (["history", "--tenant", f"{TENANT} Bare", "--json"], {}, 0),
    ]
    outputs = []
    for args, how, code in runs:
        p = run_cli(args, sandbox, tmp_path, **how)
        assert p.returncode == code, (args, p.returncode, p.stdout[-800:], p.stderr[-800:])
        outputs.append((args, p.stdout, p.stderr))
    # the scans below see what was written: the SDK's debug log, masked forms, the database
    everything = "\n".join(o + e for _, o, e in outputs)
    assert "Request to Stripe api" in everything and "Stripe API response" in everything  # STRIPE_LOG=debug
    assert f"rk_test_…{test[-4:]}" in everything and f"rk_live_…{live[-4:]}" in everything
    assert "request: GET /v1/x?api_key%3D" in everything  # the echo fault was heard (and its key masked)
    assert "vault: GET /v1?token%3Drk_test_…" in everything  # the failing source's stderr, redacted
    for args, out, err in outputs:
        assert leaks(out, keys) == [], f"stdout of {args[:2]}"
        assert leaks(err, keys) == [], f"stderr of {args[:2]}"
    assert hook.bodies, "the revoked key's check raised an alert, posted by the CLI's own sender"
    assert leaks(b"".join(hook.bodies), keys) == [], "an alert posted"

    db = tmp_path / "hygiene.db"
    store.dispose_engine(f"sqlite:///{db}")
    raw_db = b"".join(p.read_bytes() for p in tmp_path.glob("hygiene.db*"))
    assert f"rk_test_…{test[-4:]}".encode() in raw_db  # the scan sees the database's content
    assert leaks(raw_db, keys) == [], "the database files (.db, -wal, -shm)"
    n, hits = scan_tree(tmp_path, keys)
    assert n >= 2 and (tmp_path / "data" / ".fingerprint_secret").exists()
    assert hits == []
    n, hits = scan_tree(Path(tempfile.gettempdir()), keys, since=started)
    assert hits == [], "a temporary file holds the key"
    assert_sandbox_kept_only_key_ids(sandbox, keys, ids)


# ---------------------------------------------------------------------------------------------------------
# The same flows in-process, every log record kept


def test_in_process_flows_log_nothing_of_the_key(sandbox, canaries, tmp_path, monkeypatch, all_logs, capfd):
    from core import runtime
    from core.config import settings
    from core.engine.check import check_key
    from core.engine.keys import intake
    from core.features.fleet import FleetOptions, run_fleet
    from core.features.recheck import parse_lines
    from core.service import Service

    test, live, ids = canaries
    keys = (test, live)
    url = f"sqlite:///{tmp_path / 'inproc.db'}"
    for k, v in {"STRIPE_API_BASE": sandbox.url, "DATABASE_URL": url, "KEYHEALTH_DATA_DIR": str(tmp_path / "data"),
                 "KEYHEALTH_FINGERPRINT_SECRET": "hygiene-in-process", "HOME": str(tmp_path / "home"),
                 **FAST_ENV}.items():
        monkeypatch.setenv(k, v)
    svc = Service(runtime.real(settings(), who="hygiene"))  # the wiring the CLI uses, from the environment
    objects = []

    for k in keys:
        res = svc.check(k, TENANT, source="cli").result
        assert res.status == "healthy", res.problem
        objects.append(res)
        objects.append(svc.check(intake(k).key).result)  # what the dashboard hands on
    # trouble on the way: 500s, a dropped connection, 429s: retried, then unknown; nothing logs the key
    sandbox.faults.fail("/v1/charges", status=500)
    sandbox.faults.drop("/v1/customers", times=2)
    sandbox.faults.fail("/v1/invoices", status=429, body="html")
    objects.append(svc.check(test).result)
    clear_faults(sandbox)
    entries, failed = parse_lines(f"{TENANT},{test}\n{TENANT},{live}\nBad\x00,{test}\n")
    objects.append(run_fleet(svc, entries, FleetOptions(concurrency=2)))
    objects.append(failed)
    for k in keys:
        objects.append(svc.sample(k, TENANT, window_days=30, max_rows=20))
    txn = svc.transact(test, TENANT, source="cli")
    assert txn.status == "passed", txn.problem
    objects += [txn, svc.transact(live)]
    store.at(url).update_tenant(TENANT, notes=f"the key was {test}")  # a careless note is redacted
    # an exception raised while the key is in flight: its traceback is logged, the key is not in it
    try:
        check_key(test, settings=object())  # type: ignore[arg-type]
    except Exception:
        logging.getLogger("keyhealth").exception("check failed")

    texts = all_logs.texts
    assert any(t.startswith("stripe ") and "Request to Stripe api" in t for t in texts), "stripe's logger was heard"
    # the engine's own transport (core.engine.wire) writes no log line at all: no URL, no header
    assert not any(t.startswith(("urllib3", "core.engine.wire")) for t in texts), "the transport logged a request"
    assert any("Traceback" in t for t in texts)
    hits = [t[:200] for t in texts if leaks(t, keys)]
    assert hits == [], "log records hold the key"
    cap = capfd.readouterr()  # (the SDK reads STRIPE_LOG at import: its printing is covered by the CLI test)
    assert leaks(cap.out + cap.err, keys) == []
    for o in objects:  # what a stray print, log or cache of a result would show
        assert leaks(repr(o), keys) == [] and leaks(str(o), keys) == []
        if hasattr(o, "to_json"):
            assert leaks(json.dumps(o.to_json(), default=str), keys) == []
    with pytest.raises(TypeError):
        pickle.dumps(intake(test).key)  # a SecretKey cannot reach a pickle-based cache
    store.dispose_engine(url)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("inproc.db*"))
    assert f"rk_live_…{live[-4:]}".encode() in raw  # the scan sees the database content
    assert leaks(raw, keys) == [], "the database files (.db, -wal, -shm)"
    assert scan_tree(tmp_path, keys)[1] == []
    assert_sandbox_kept_only_key_ids(sandbox, keys, ids)


# ---------------------------------------------------------------------------------------------------------
# The dashboard


def _walk(node):
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for child in children.values():
            yield from _walk(child)


PASSWORD_INPUTS = {"kh_key_input", "kh_sample_key_input", "kh_txn_key_input"}  # the widgets' own state


def rendered(at) -> str:
    """Every element of the page, its proto serialised (the password fields included: they send no value back)."""
    return "\n".join(str(node.proto) for node in _walk(at._tree) if getattr(node, "proto", None) is not None)


def session_leaks(at, keys) -> list[str]:
    """Session state beyond the key's own places (the SecretKey in kh_key and the password fields)."""
    out = []
    for k, v in at.session_state.to_dict().items():
        if k in PASSWORD_INPUTS:
            continue
        if k == "kh_key":
            assert type(v).__name__ == "SecretKey" and leaks(repr(v), keys) == []
            continue
        if leaks(repr(v), keys) or leaks(str(v), keys):
            out.append(k)
    return out


@pytest.fixture
def app_env(sandbox, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    (tmp_path / "home").mkdir()
    for k, v in {"STRIPE_API_BASE": sandbox.url, "DATABASE_URL": url, "KEYHEALTH_DEMO": "0",
                 "KEYHEALTH_DATA_DIR": str(tmp_path / "data"), "KEYHEALTH_FINGERPRINT_SECRET": "hygiene-app",
                 "HOME": str(tmp_path / "home"), **FAST_ENV}.items():
        monkeypatch.setenv(k, v)
    yield url
    store.dispose_engine(url)


@pytest.fixture
def media(monkeypatch):
    """Every file Streamlit's media storage is handed (the download buttons' bytes)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    files: list[tuple[str, bytes]] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def capture(self, path_or_data, mimetype, kind, filename=None):
        data = path_or_data if isinstance(path_or_data, bytes) else Path(path_or_data).read_bytes()
        files.append((filename or mimetype, data))
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", capture)
    return files


def app_pages() -> list[Path]:
    """The pages app.py's router runs (app_pages/ may also hold shared modules)."""
    found = re.findall(r"[\"'](app_pages/[A-Za-z0-9_]+\.py)[\"']", (ROOT / "app.py").read_text(encoding="utf-8"))
    return [ROOT / p for p in dict.fromkeys(found) if (ROOT / p).exists()]


def _button(at, label):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r} among {[b.label for b in at.button]}"
    return found[0]


def test_dashboard_never_shows_logs_or_stores_the_key(sandbox, canaries, app_env, tmp_path, all_logs, media):
    from apptest import AppTest

    test, live, ids = canaries
    keys = (test, live)
    started = time.time() - 1
    seen: list[tuple[str, str]] = []  # (where, rendered text)
    session: list[str] = []

    def look(at, where):
        assert not at.exception, (where, at.exception)
        assert not [e for e in at.error if "Something went wrong" in e.value], where
        seen.append((where, rendered(at)))
        session.extend(f"{where}:{k}" for k in session_leaks(at, keys))

    at = AppTest.from_file("../../app.py", default_timeout=90)
    at.run()
    look(at, "check:start")
    pick = at.selectbox(key="kh_tenant_pick")
    pick.set_value(pick.options[0]).run()
    at.text_input(key="kh_tenant_new").input(TENANT)
    at.run()  # the tenant choice first; the key is sent with the form's submit
    at.text_input(key="kh_key_input").input(f"  Bearer {test}  ")
    look(at, "check:pasted")
    next(b for b in at.button if b.label == "Check and record").click().run()
    look(at, "check:result")
    assert at.success and "HEALTHY" in at.success[0].value
    assert len(at.get("download_button")) >= 2

    at.switch_page("app_pages/sample_data.py").run()
    look(at, "sample_data")
    _button(at, "Fetch sample data").click().run()
    look(at, "sample_data:fetched")
    at.switch_page("app_pages/sample_transaction.py").run()
    look(at, "sample_transaction")
    _button(at, "Create test charge").click().run()
    look(at, "sample_transaction:created")
    assert at.success and "Passed" in at.success[0].value
    others = [p for p in app_pages() if p.stem not in ("check", "sample_data", "sample_transaction")]
    assert {p.stem for p in others} >= {"tenant", "triage", "fleet", "about"}
    for page in others:
        at.switch_page(f"app_pages/{page.name}").run()
        look(at, page.stem)

    # the live canary, with Stripe failing on charges (unknown rows, then a re-probe); then refused by the
    # sample transaction before any request
    at.switch_page("app_pages/check.py").run()
    at.run()  # the tenant choice first; the key is sent with the form's submit
    at.text_input(key="kh_key_input").input(live)
    sandbox.faults.fail("/v1/charges", status=503)
    next(b for b in at.button if b.label == "Check and record").click().run()
    look(at, "check:live:unknown")
    clear_faults(sandbox)
    reprobe = [b for b in at.button if b.label.startswith("Re-probe")]
    assert reprobe, "a check with unknown rows offers a re-probe"
    reprobe[0].click().run()
    look(at, "check:live")
    assert at.success and "HEALTHY" in at.success[0].value
    at.switch_page("app_pages/sample_transaction.py").run()
    look(at, "sample_transaction:live")
    at.switch_page("app_pages/check.py").run()
    _button(at, "Forget key").click().run()
    look(at, "check:forgotten")
    assert "kh_key" not in at.session_state

    # a fresh session pasting the key straight into the sample data page
    at2 = AppTest.from_file("../../app.py", default_timeout=90)
    at2.run()  # the router registers its pages first: with no pages/ folder a file name alone is no route
    at2.switch_page("app_pages/sample_data.py").run()
    at2.text_input(key="kh_sample_key_input").input(test).run()
    _button(at2, "Use this key").click().run()
    look(at2, "sample_data:pasted")
    _button(at2, "Fetch sample data").click().run()
    look(at2, "sample_data:pasted:fetched")

    # what was looked at is real: masked keys, download bytes
    shown = "\n".join(t for _, t in seen)
    assert f"rk_test_…{test[-4:]}" in shown and f"rk_live_…{live[-4:]}" in shown
    assert any(name.endswith(".csv") for name, _ in media) and any(name.endswith(".json") for name, _ in media)
    assert any(f"rk_test_…{test[-4:]}".encode() in data for _, data in media)
    for where, text in seen:
        assert leaks(text, keys) == [], f"rendered on {where}"
    for name, data in media:
        assert leaks(data, keys) == [], f"downloaded file {name}"
    assert session == [], "session state holds the key outside its own places"
    hits = [t[:200] for t in all_logs.texts if leaks(t, keys)]
    assert hits == [], "log records hold the key"
    store.dispose_engine(app_env)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("app.db*"))
    assert f"rk_test_…{test[-4:]}".encode() in raw  # the scan sees the database content
    assert leaks(raw, keys) == [], "the database files (.db, -wal, -shm)"
    _n, hits = scan_tree(tmp_path, keys)
    assert hits == []
    for d in (ROOT / ".streamlit", ROOT / "data", Path(tempfile.gettempdir())):
        assert scan_tree(d, keys, since=started)[1] == [], f"{d} holds the key"
    assert_sandbox_kept_only_key_ids(sandbox, keys, ids)
