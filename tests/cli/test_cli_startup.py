"""The CLI as a package that starts fast (core/cli/): what `--help`, a usage error and a malformed key load, the
one error base class and its exit statuses, every command's --help, and the palette's terminal colours.

Deterministic: the heavy modules are named, not timed (the figures are in `make bench`: bench/bench_cli.py).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import build_parser, main
from core.cli.errors import CliError, DatabaseError, ExitStatus, UsageError, as_cli_error
from core.cli.parser import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "plotly", "sqlalchemy", "sqlmodel", "alembic", "stripe", "streamlit")
MALFORMED = ["rk_bad", "sk_test_abc", "rk_live_short", "hello", "rk_test_" + "é" * 30]

# Runs the CLI's main() in a fresh interpreter, then prints its exit code and the heavy modules it loaded.
_PROBE = """
import contextlib, io, sys
HEAVY = {HEAVY}
import core.cli
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    code = core.cli.main(sys.argv[1:])
print(int(code))
print(sorted(m for m in sys.modules if m.split('.')[0] in HEAVY))
print(out.getvalue(), end="")
""".replace("{HEAVY}", repr(set(HEAVY)))


def loaded(args: list[str], stdin: str = "", tmp_path: Path | None = None) -> tuple[int, list[str], str]:
    """(exit code, heavy modules loaded, stdout) of `main(args)` in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if k != "STRIPE_KEY"}
    env.update(NO_COLOR="1", COLUMNS="100")
    if tmp_path is not None:
        env.update(KEYHEALTH_DATA_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}")
    p = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=ROOT, env=env, input=stdin, capture_output=True,
                       text=True, timeout=120, check=True)
    code, modules, rest = p.stdout.split("\n", 2)
    return int(code), json.loads(modules.replace("'", '"')), rest


def test_importing_the_cli_loads_no_heavy_module():
    code, modules, _ = loaded(["--help"])
    assert code == ExitStatus.OK and modules == []


@pytest.mark.parametrize("args", [["--help"], ["check", "--help"], ["recheck", "--help"], ["nope"],
                                  ["check", "rk_test_" + "A" * 24]])
def test_help_and_usage_errors_load_no_heavy_module(args):
    code, modules, _ = loaded(args)
    assert modules == [], f"{args} loaded {modules}"
    assert code == (ExitStatus.OK if "--help" in args else ExitStatus.USAGE)


@pytest.mark.parametrize("json_flag", [True, False])
def test_a_malformed_key_answers_without_sqlalchemy_or_stripe(tmp_path, json_flag):
    """`check --json <malformed>`: its one sentence and exit 1 (invalid), no request, and none of the heavy modules
    (the old CLI built the service first: SQLAlchemy, SQLModel, Alembic and the stripe SDK for a typo)."""
    code, modules, out = loaded(["check", "--json"] if json_flag else ["check"], stdin="rk_bad\n", tmp_path=tmp_path)
    assert modules == []
    assert code == ExitStatus.VERDICT
    if json_flag:
        got = json.loads(out)
        assert got["status"] == "invalid" and got["requests"] == 0 and "rk_live_ or rk_test_" in got["problem"]
    else:
        assert "INVALID" in out and "problem (for support):" in out
    assert not (tmp_path / "cli.db").exists()  # no database was opened, let alone migrated


@pytest.mark.parametrize("raw", MALFORMED)
def test_the_fast_answer_is_the_services_answer(raw, make_service, tmp_path):
    """refused_here answers exactly as Service.check does for a key refused before any request with no
    fingerprint (lifecycle included), and declines every key the service must see (a fingerprint: history)."""
    from core.cli.commands import refused_here
    from core.engine.keys import SecretKey

    fast = refused_here(SecretKey.parse(raw))
    assert fast is not None
    svc = make_service(f"sqlite:///{tmp_path / 's.db'}")
    slow = svc.check(raw).result
    a, b = fast.to_json(), slow.to_json()
    a.pop("checked_at"), b.pop("checked_at")
    assert a == b


@pytest.mark.parametrize("raw", ["pk_test_" + "Z" * 30, "rk_test_" + "A" * 24])
def test_keys_with_a_fingerprint_go_to_the_service(raw):
    from core.cli.commands import refused_here
    from core.engine.keys import SecretKey

    assert refused_here(SecretKey.parse(raw)) is None


def test_exit_statuses_are_the_documented_codes():
    assert {s.name: int(s) for s in ExitStatus} == {
        "OK": 0, "VERDICT": 1, "USAGE": 2, "DATABASE": 3, "UNREACHABLE": 4, "UNFINISHED": 5, "SIGINT": 130,
        "SIGTERM": 143,
    }


def test_errors_below_the_cli_become_cli_errors_by_class():
    from core.config import SettingError
    from core.engine.catalogue import CatalogueError
    from core.store import DatabaseFailure, StoreInputError, UnknownTenantError
    from core.store.errors import DatabaseProblem

    db = DatabaseFailure(DatabaseProblem("locked", "the database is locked", "try again"))
    cases = [(db, DatabaseError, ExitStatus.DATABASE), (StoreInputError("Bad name."), UsageError, ExitStatus.USAGE),
             (UnknownTenantError("No tenant."), UsageError, ExitStatus.USAGE),
             (CatalogueError("Bad entry."), UsageError, ExitStatus.USAGE),
             (SettingError("Bad setting."), UsageError, ExitStatus.USAGE)]
    for e, kind, status in cases:
        err = as_cli_error(e)
        assert isinstance(err, kind) and isinstance(err, CliError) and err.status == status and str(err) == str(e)
    own = UsageError("x")
    assert as_cli_error(own) is own
    for bug in (ValueError("a bug"), KeyError("k"), TypeError("t")):  # a bug keeps its traceback
        assert as_cli_error(bug) is None


def test_a_bug_is_raised_not_turned_into_a_sentence(monkeypatch, capsys):
    def broken(args):
        raise ValueError("not one of ours")

    parser = build_parser()
    monkeypatch.setattr("core.cli.commands.build_parser", lambda: parser)
    parser.set_defaults(func=broken)
    sub = parser._subparsers._group_actions[0].choices["catalogue"]  # type: ignore[union-attr]
    sub.set_defaults(func=broken)
    with pytest.raises(ValueError, match="not one of ours"):
        main(["catalogue"])


def test_a_cli_error_says_its_sentence_and_exits_with_its_status(monkeypatch, capsys):
    def failing(args):
        raise DatabaseError("The database is locked; try again.")

    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["catalogue"]  # type: ignore[union-attr]
    sub.set_defaults(func=failing)
    monkeypatch.setattr("core.cli.commands.build_parser", lambda: parser)
    assert main(["catalogue"]) == ExitStatus.DATABASE == 3
    assert capsys.readouterr().err == "error: The database is locked; try again.\n"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_help_says_what_it_reads_prints_and_its_exit_codes(name, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[name]  # type: ignore[union-attr]
    text = sub.format_help()
    description = " ".join(COMMANDS[name][1].split())
    assert re.search(r"\bread", description, re.I), f"{name}: says not what it reads"
    assert re.search(r"\bprint", description, re.I), f"{name}: says not what it prints"
    codes = [int(m) for m in re.findall(r"^\s+(\d+)\s{2}", text.split("exit codes:")[1], re.M)]
    assert codes[:2] == [0, 1] or codes[:2] == [0, 2], f"{name}: {codes}"
    assert ExitStatus.USAGE in codes and codes == sorted(codes)
    assert sub.get_default("func") is not None  # bound to its command


def test_the_cli_takes_its_colours_from_the_palette():
    from core.cli.render import paint
    from core.ui.palette import STATUS_PALETTE, TERMINAL_SGR, VERDICT_COLOURS

    for what in (*STATUS_PALETTE, *VERDICT_COLOURS):
        assert paint("x", what, True) == f"\033[{TERMINAL_SGR[what]}mx\033[0m"
        assert paint("x", what, False) == "x"
    # no colour is written twice: core/cli holds no colour code of its own
    for path in (ROOT / "core" / "cli").glob("*.py"):
        assert not re.search(r'"(?:\d;)?[39]\d"|\[3\dm', path.read_text()), path


_LEAVE = """
import atexit, sys, threading, time
import sqlalchemy as sa
from core.cli.commands import leave
from core.store.db import get_engine
with get_engine(sys.argv[1]).begin() as conn:
    conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    conn.execute(sa.text("INSERT INTO t VALUES (1)"))
atexit.register(lambda: print("atexit ran"))
threading.Thread(target=lambda: (time.sleep(0.2), print("thread finished", flush=True))).start()
from concurrent.futures import ThreadPoolExecutor
pool = ThreadPoolExecutor(1)  # nobody shuts it down (still referenced): its idle thread is told to stop
pool.submit(int)
sys.stdout.write("unflushed ")
leave(7)
"""


def test_the_cli_leaves_as_the_interpreter_would_less_its_teardown(tmp_path):
    """core.cli.commands.leave (every `python -m core` ends there): the exit code, the threads that are not daemons
    waited for (a thread pool nobody shut down told to stop first, or the exit would wait for ever), the atexit
    handlers run, stdout flushed, the database engines closed (SQLite's WAL folded into the
    file), and then os._exit, without tearing the modules down."""
    db = tmp_path / "leave.db"
    done = subprocess.run([sys.executable, "-c", _LEAVE, f"sqlite:///{db}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 7, done.stderr
    assert done.stdout == "unflushed thread finished\natexit ran\n"
    wal = db.with_name(db.name + "-wal")
    assert db.stat().st_size > 0 and (not wal.exists() or wal.stat().st_size == 0)


def test_help_and_usage_errors_leave_with_argparse_codes():
    """argparse's own exits (--help: 0, a usage error: 2) go through leave as well."""
    ok = subprocess.run([sys.executable, "-m", "core", "--help"], cwd=ROOT, capture_output=True, text=True,
                        timeout=60)
    bad = subprocess.run([sys.executable, "-m", "core", "no-such-command"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert ok.returncode == 0 and "usage" in ok.stdout.lower()
    assert bad.returncode == 2 and bad.stderr.strip()
