"""Key intake: normalisation, classification, problem sentences, masking, SecretKey, fingerprints.

Every key here is fake and built at runtime from a seeded generator, so no key-shaped literal is committed.
"""
from __future__ import annotations

import copy
import hashlib
import hmac
import os
import pickle
import random
import re
import socket
import stat
import string
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.engine import keys
from core.engine.keys import Intake, fingerprint, fingerprint_secret, intake, mask

ROOT = Path(__file__).resolve().parents[2]
BASE62 = string.ascii_letters + string.digits
ENV = keys.FINGERPRINT_SECRET_ENV

# Prefixes assembled from parts so that no source line looks like a key to a secret scanner (fake keys only).
RK_TEST, RK_LIVE = "rk_" + "test_", "rk_" + "live_"
SK_TEST, SK_LIVE = "sk_" + "test_", "sk_" + "live_"
PK_TEST, PK_LIVE = "pk_" + "test_", "pk_" + "live_"


def body(n: int, seed: int) -> str:
    """A fake base62 body; seeded, so each case is reproducible and its 5-character windows are distinctive."""
    rng = random.Random(seed)
    return "".join(rng.choice(BASE62) for _ in range(n))


def windows(secret: str, n: int = 5) -> set[str]:
    return {secret[i:i + n] for i in range(len(secret) - n + 1)}


def leaks(text: str, secret: str) -> set[str]:
    """5-character pieces of `secret` that appear in `text` (masking may show at most the last 4)."""
    return {w for w in windows(secret) if w in text}


@pytest.fixture(autouse=True)
def _fixed_secret(monkeypatch):
    # A fixed fingerprint secret so no test writes data/.fingerprint_secret in the repository.
    monkeypatch.setenv(ENV, "fake-test-secret")


# ---------------------------------------------------------------------------------------------------------
# Rejected input: (case id, raw text, expected reason, expected kind, keyword the problem must contain,
#                  the secret material that must never show up in the masked form or the problem)

B = {i: body(60, i) for i in range(100)}  # fake bodies, one per case


def _rejected_cases():
    b = B
    return [
        ("empty", None, "empty", "empty", "no key", ""),
        ("whitespace-only", "  \n\t \r\n", "whitespace", "empty", "spaces", ""),
        ("only-quotes", '""', "label_only", "empty", "no key after", ""),
        ("dashboard-url", "https://dashboard.stripe.com/test/apikeys", "url", "unknown", "web address", ""),
        ("key-name", "API key for Pointai", "key_name", "unknown", "name", ""),
        ("sentence", "please check my stripe account", "sentence", "unknown", "words", ""),
        ("two-keys-newline", RK_TEST + b[1] + "\n" + RK_TEST + b[2], "several_keys", "unknown", "two keys",
            b[1] + b[2]),
        ("two-keys-glued", RK_TEST + b[3] + PK_TEST + b[4], "several_keys", "unknown", "two keys", b[3] + b[4]),
        ("three-keys-commas", f"{RK_LIVE}{b[5]}, {SK_LIVE}{b[6]}, {PK_LIVE}{b[7]}", "several_keys", "unknown",
            "three keys", b[5] + b[6] + b[7]),
        ("masked-ellipsis", RK_LIVE + "…" + b[8][-4:], "masked", "restricted", "masked", ""),
        ("masked-stars", RK_TEST + "***" + b[9][-4:], "masked", "restricted", "masked", ""),
        ("masked-dots-secret", SK_LIVE + "..." + b[10][-4:], "masked", "secret", "masked", ""),
        ("masked-no-prefix", "••••" + b[11][-4:], "masked_fragment", "unknown", "masked", ""),
        ("uppercase-prefix", "RK_TEST_" + b[12].upper(), "uppercase_prefix", "restricted", "capital", b[12].upper()),
        ("mixed-case-prefix", "Rk_Live_" + b[13], "uppercase_prefix", "restricted", "capital", b[13]),
        ("publishable-test", PK_TEST + b[14], "publishable", "publishable", "publishable", b[14]),
        ("publishable-live", PK_LIVE + b[15], "publishable", "publishable", "publishable", b[15]),
        ("webhook-secret", "whsec_" + b[16], "webhook_secret", "webhook_secret", "webhook", b[16]),
        ("secret-live", SK_LIVE + b[17], "secret", "secret", "roll", b[17]),
        ("secret-test", SK_TEST + b[18], "secret", "secret", "roll", b[18]),
        ("org-live", "sk_org_" + "live_" + b[19], "organization", "organization", "organization", b[19]),
        ("org-test", "sk_org_" + "test_" + b[20], "organization", "organization", "organization", b[20]),
        ("sandbox-claim", "rkcs_" + "test_" + b[21], "sandbox_claim", "sandbox_claim", "sandbox", b[21]),
        ("github-classic", "ghp_" + b[22][:36], "other_secret:github", "other_secret", "GitHub", b[22][:36]),
        ("github-fine-grained", "github_pat_" + b[23], "other_secret:github", "other_secret", "GitHub", b[23]),
        ("openai-project", "sk-proj-" + b[24], "other_secret:openai", "other_secret", "OpenAI", b[24]),
        ("openai-legacy", "sk-" + b[25][:48], "other_secret:openai", "other_secret", "OpenAI", b[25][:48]),
        ("anthropic", "sk-ant-" + b[26], "other_secret:anthropic", "other_secret", "Anthropic", b[26]),
        ("aws-key-id", "AKIA" + b[27][:16].upper(), "other_secret:aws", "other_secret", "AWS", b[27][:16].upper()),
        ("slack", "xoxb-" + b[28], "other_secret:slack", "other_secret", "Slack", b[28]),
        ("google", "AIza" + b[29][:35], "other_secret:google", "other_secret", "Google", b[29][:35]),
        ("jwt", "eyJ" + b[30][:20] + ".eyJ" + b[31][:20] + "." + b[32][:20], "other_secret:jwt", "other_secret",
            "JWT", b[30][:20] + b[31][:20] + b[32][:20]),
        ("paypal-braintree", "access_token$production$" + b[33][:16] + "$" + b[34][:32], "other_secret:paypal",
            "other_secret", "PayPal", b[33][:16] + b[34][:32]),
        ("wrong-mode-prod", "rk_" + "prod_" + b[35], "wrong_prefix", "restricted", "prefix", b[35]),
        ("no-mode", "rk_" + b[36], "no_mode", "restricted", "live_ or test_", b[36]),
        ("over-255", RK_TEST + (b[37] * 5)[:280], "too_long", "restricted", "255", b[37]),
        ("body-248", RK_LIVE + (b[38] * 5)[:248], "too_long", "restricted", "256 characters", b[38]),
        ("non-ascii-e-acute", RK_TEST + b[39][:30] + "é" + b[39][30:], "bad_character", "restricted", "non-ASCII",
            b[39]),
        ("cyrillic-homoglyph", RK_LIVE + b[40][:10] + "\u0430" + b[40][10:], "bad_character", "restricted", "U+0430",
            b[40]),
        ("hyphen", RK_TEST + b[41][:20] + "-" + b[41][20:], "bad_character", "restricted", "hyphen", b[41]),
        ("underscore", RK_TEST + b[42][:25] + "_" + b[42][25:], "bad_character", "restricted", "underscore", b[42]),
        ("control-char", RK_TEST + b[43][:33] + "\x07" + b[43][33:], "bad_character", "restricted",
            "control character", b[43]),
        ("plus-sign", RK_TEST + b[44][:44] + "+" + b[44][44:], "bad_character", "restricted", "'+'", b[44]),
        ("space-then-text", RK_TEST + b[45] + " (old key)", "space_and_text", "restricted", "contains a space", b[45]),
        ("text-before-key", "my key is " + RK_TEST + b[46], "text_before_key", "restricted", "before the key", b[46]),
        ("truncated-12", RK_TEST + b[47][:12], "truncated", "restricted", "truncated", b[47][:12]),
        ("truncated-23", RK_LIVE + b[48][:23], "truncated", "restricted", "truncated", b[48][:23]),
        ("prefix-only", RK_LIVE, "prefix_only", "restricted", "only the prefix", ""),
        ("placeholder", RK_TEST + "x" * 30, "placeholder", "restricted", "placeholder", ""),
        ("account-id", "acct_" + b[49][:16], "account_id", "unknown", "account ID", b[49][:16]),
        ("body-without-prefix", b[50], "no_prefix", "unknown", "without its prefix", b[50]),
        ("garbage", "hunter2!", "unknown", "unknown", "not a Stripe key", ""),
        ("huge-paste", "x" * 20_000, "paste_too_long", "unknown", "far more", ""),
    ]


REJECTED = _rejected_cases()


def _one_sentence(problem: str) -> None:
    assert isinstance(problem, str) and problem
    assert problem.endswith("."), problem
    assert "\n" not in problem and "\r" not in problem, problem
    assert "Traceback" not in problem and "Error:" not in problem and 'File "' not in problem, problem
    assert problem[0].isupper(), problem
    # One sentence: no sentence end followed by a new capitalised sentence before the final full stop.
    assert not re.search(r"[.!?]\s+[A-Z]", problem[:-1]), problem


def test_table_is_big_enough():
    assert len(REJECTED) >= 40
    assert len({c[0] for c in REJECTED}) == len(REJECTED)


@pytest.mark.parametrize("case_id,raw,reason,kind,keyword,secret", REJECTED, ids=[c[0] for c in REJECTED])
def test_rejected(case_id, raw, reason, kind, keyword, secret):
    it = intake(raw)
    assert isinstance(it, Intake)
    assert not it.accepted and not it.info.accepted
    assert it.key is None
    assert it.reason == reason
    assert it.info.kind == kind
    problem = it.info.problem
    _one_sentence(problem)
    assert keyword.lower() in problem.lower(), (keyword, problem)
    # The masked form and the problem never show more than the last 4 characters of any key body.
    assert not leaks(it.info.masked, secret), it.info.masked
    assert not leaks(problem, secret), problem
    assert not leaks(repr(it), secret)
    if secret and raw:
        assert raw not in it.info.masked and raw not in problem
    assert len(it.info.masked) <= 60


def test_each_case_has_its_own_message():
    problems = {}
    for case_id, raw, *_ in REJECTED:
        problems.setdefault(intake(raw).info.problem, []).append(case_id)
    dupes = {p: ids for p, ids in problems.items() if len(ids) > 1}
    assert not dupes
    assert len(problems) == len(REJECTED)


def test_distinct_categories_never_share_a_message():
    by_reason: dict[str, set[str]] = {}
    for _, raw, reason, *_ in REJECTED:
        by_reason.setdefault(reason, set()).add(intake(raw).info.problem)
    seen: dict[str, str] = {}
    for reason, msgs in by_reason.items():
        for m in msgs:
            assert seen.setdefault(m, reason) == reason, (m, reason, seen[m])


@pytest.mark.parametrize(
    "raw,same_as",
    [
        ("", None),  # empty string = nothing
        ("\u200b\ufeff\u2060", "  \n\t \r\n"),  # only invisible characters = only whitespace
        ("\xa0\xa0", "  \n\t \r\n"),  # only NBSP
        ("dashboard.stripe.com/apikeys", "https://dashboard.stripe.com/test/apikeys"),
        ("Bearer", '""'),
        ("STRIPE_KEY=", '""'),
    ],
)
def test_same_category_same_message(raw, same_as):
    assert intake(raw).info.problem == intake(same_as).info.problem


def test_mode_from_prefix():
    assert intake(SK_LIVE + B[60]).info.mode == "live"
    assert intake(PK_TEST + B[61]).info.mode == "test"
    assert intake(RK_LIVE + B[62]).info.mode == "live"
    assert intake(RK_TEST + B[63]).info.mode == "test"
    assert intake("whsec_" + B[64]).info.mode is None
    assert intake("rk_" + "prod_" + B[65]).info.mode is None


def test_messages_point_to_the_right_fix():
    live_secret = intake(SK_LIVE + B[66]).info.problem
    assert "rk_live_…" in live_secret and "not share" in live_secret and "restricted key" in live_secret
    assert "rk_test_…" in intake(PK_TEST + B[67]).info.problem
    assert "Create restricted key" in intake(PK_TEST + B[67]).info.problem
    assert "complete key" in intake(RK_TEST + B[68][:10]).info.problem
    assert "position 39" in intake(RK_TEST + B[69][:30] + "é" + B[69][30:]).info.problem
    # A masked restricted key can be revealed or recreated; a masked key of another kind means "ask for the rk_ key".
    assert "Reveal key" in intake(RK_LIVE + "…abcd").info.problem  # fake
    assert "Reveal key" not in intake(SK_LIVE + "…abcd").info.problem  # fake
    assert "rk_live_…" in intake(SK_LIVE + "…abcd").info.problem  # fake


def test_prefixless_body_bounds():
    assert intake(body(24, 90)).reason == "no_prefix"
    assert intake(body(247, 91)).reason == "no_prefix"
    assert intake(body(248, 92)).reason == "unknown"
    assert intake(body(23, 93)).reason == "unknown"


# ---------------------------------------------------------------------------------------------------------
# Acceptable pastes: all normalise to the same key, the same fingerprint


KEY = RK_TEST + body(99, 1000)  # fake
K1, K2 = KEY[:40], KEY[40:]


ACCEPTED_PASTES = [
    ("plain", KEY),
    ("surrounding-whitespace", f"  \t{KEY}\n\n"),
    ("crlf", f"{KEY}\r\n"),
    ("single-quotes", f"'{KEY}'"),
    ("double-quotes", f'"{KEY}"'),
    ("backticks", f"`{KEY}`"),
    ("smart-double-quotes", f"“{KEY}”"),
    ("smart-single-quotes", f"‘{KEY}’"),
    ("bearer", f"Bearer {KEY}"),
    ("bearer-lowercase", f"bearer {KEY}"),
    ("authorization-header", f"Authorization: Bearer {KEY}"),
    ("env-line", f"STRIPE_KEY={KEY}"),
    ("export-quoted", f"export STRIPE_API_KEY='{KEY}'"),
    ("export-semicolon", f'export STRIPE_API_KEY="{KEY}";'),
    ("yaml", f"stripe_key: {KEY}"),
    ("json-pair", f'{{"stripe_key": "{KEY}"}}'),
    ("trailing-comma", f"{KEY},"),
    ("trailing-semicolon", f"{KEY};"),
    ("bom", f"\ufeff{KEY}"),
    ("zero-width-inside", f"\u200b{K1}\u200d{K2}\u200c"),
    ("soft-hyphen-and-word-joiner", f"{K1}\u00ad{K2}\u2060"),
    ("nbsp-around", f"\xa0{KEY}\xa0"),
    ("wrapped-lines", f"{K1}\n{K2}"),
    ("wrapped-crlf-indented", f"    {KEY[:30]}\r\n    {KEY[30:70]}\r\n    {KEY[70:]}"),
    ("wrapped-as-spaces", f"{K1} {K2}"),
    ("wrapped-nbsp", f"{K1}\xa0{K2}"),
    ("wrapped-inside-prefix", f"rk\n_test_{KEY[8:]}"),
    ("angle-brackets", f"<{KEY}>"),
    ("terminal-colours", f"\x1b[32m{KEY}\x1b[0m"),
    ("everything-at-once", f"  \ufeffexport STRIPE_API_KEY=\"{K1}\n{K2}\";\u200b \n"),
]


@pytest.mark.parametrize("name,raw", ACCEPTED_PASTES, ids=[a[0] for a in ACCEPTED_PASTES])
def test_accepted_pastes_normalise_to_the_same_key(name, raw):
    it = intake(raw)
    assert it.accepted and it.info.accepted, it.info.problem
    assert it.info.problem is None
    assert it.reason == "ok"
    assert it.info.kind == "restricted" and it.info.mode == "test"
    assert str(it.key) == KEY
    assert it.info.fingerprint == intake(KEY).info.fingerprint == fingerprint(KEY)
    assert it.info.masked == RK_TEST + "…" + KEY[-4:]
    if raw != KEY:
        assert it.notes  # says what it removed


def test_live_key_and_length_bounds():
    shortest = RK_LIVE + body(24, 1001)
    longest = RK_LIVE + body(247, 1002)
    assert len(longest) == 255
    for k in (shortest, longest):
        it = intake(k)
        assert it.accepted and it.info.mode == "live" and str(it.key) == k
    assert intake(RK_LIVE + body(23, 1003)).reason == "truncated"
    assert intake(RK_LIVE + body(248, 1004)).reason == "too_long"


def test_lengths_between_are_all_accepted():
    # No fixed length: every body length from 24 to 247 is fine.
    for n in range(24, 248):
        assert intake(RK_TEST + body(n, 2000 + n)).accepted, n


# ---------------------------------------------------------------------------------------------------------
# SecretKey


def test_secret_key_str_repr_format():
    it = intake(KEY)
    k = it.key
    masked = RK_TEST + "…" + KEY[-4:]
    assert str(k) == KEY
    assert f"{k!s}" == KEY  # explicit str() is the way to get the key
    assert k.masked == masked == it.info.masked == mask(KEY)
    assert repr(k) == f"SecretKey({masked})"
    assert format(k) == masked
    assert f"{k}" == masked
    assert f"{k:>40}" == f"{masked:>40}"
    assert "{}".format(k) == masked  # noqa: UP032 - str.format is a path of its own to test
    assert "%r" % (k,) == repr(k)  # noqa: UP031 - so is %-formatting
    for text in (repr(k), format(k), f"{k}", repr([k]), repr({"key": k}), repr(it), f"{it}"):
        assert not leaks(text, KEY[8:]), text
    assert k.mode == "test" and len(k) == len(KEY)


def test_secret_key_cannot_be_pickled_and_is_immutable():
    k = intake(KEY).key
    with pytest.raises(TypeError):
        pickle.dumps(k)
    with pytest.raises(TypeError):
        pickle.dumps(intake(KEY))
    with pytest.raises(AttributeError):
        k._value = "x"
    assert copy.copy(k) is k and copy.deepcopy(k) is k


def test_secret_key_equality():
    assert intake(KEY).key == intake(f" '{KEY}' ").key
    assert intake(KEY).key != intake(RK_TEST + body(99, 1005)).key
    assert hash(intake(KEY).key) == hash(intake(KEY).key)


def test_mask_function():
    assert mask(None) == "(empty)"
    assert mask("") == "(empty)"
    assert mask("hello world") == "(11 characters)"
    assert mask(SK_LIVE + B[70]) == SK_LIVE + "…" + B[70][-4:]
    assert mask(RK_TEST + "abc") == RK_TEST + "…"  # short bodies show no tail at all
    assert mask("ghp_" + B[71]) == "ghp_…" + B[71][-4:]


# ---------------------------------------------------------------------------------------------------------
# Fingerprints


def test_fingerprint_shape_stable_and_per_key():
    fp = fingerprint(KEY)
    assert re.fullmatch(r"fp_[0-9a-f]{32}", fp)
    assert fingerprint(KEY) == fp
    assert fingerprint(intake(KEY).key) == fp
    assert fingerprint(RK_TEST + body(99, 1006)) != fp
    expected = hmac.new(b"fake-test-secret", KEY.encode(), hashlib.sha256).hexdigest()[:32]
    assert fp == "fp_" + expected


def test_fingerprint_differs_with_another_secret(monkeypatch):
    before = intake(KEY).info.fingerprint
    monkeypatch.setenv(ENV, "another-fake-test-secret")
    after = intake(KEY).info.fingerprint
    assert before != after
    assert fingerprint(KEY, secret=b"x") != fingerprint(KEY, secret=b"y")


def test_which_rejected_inputs_get_a_fingerprint():
    # Complete keys of another Stripe kind: yes, so the same wrong key pasted again is recognised.
    for raw in (SK_LIVE + B[72], PK_TEST + B[73], "whsec_" + B[74], "sk_org_" + "live_" + B[75],
        "rkcs_" + "test_" + B[76]):
        it = intake(raw)
        assert not it.accepted and it.info.fingerprint == fingerprint(raw), raw
    # Malformed, masked, truncated, other providers' secrets, garbage: no.
    for raw in (RK_TEST + B[77][:10], SK_LIVE + B[78][:10], RK_LIVE + "…abcd", "ghp_" + B[79], "hello",
        "RK_TEST_" + B[80]):
        assert intake(raw).info.fingerprint is None, raw


def test_secret_file_created_0600_in_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    data = tmp_path / "data"  # does not exist yet
    monkeypatch.setenv("KEYHEALTH_DATA_DIR", str(data))
    s1 = fingerprint_secret()
    path = data / ".fingerprint_secret"
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", text)
    assert s1 == text.encode()
    assert fingerprint_secret() == s1
    keys._SECRET_CACHE.clear()
    assert fingerprint_secret() == s1  # read back from the file, not recreated
    assert intake(KEY).info.fingerprint == "fp_" + hmac.new(s1, KEY.encode(), hashlib.sha256).hexdigest()[:32]
    assert [p.name for p in data.iterdir()] == [".fingerprint_secret"]  # no temporary files left


def test_secret_directory_argument_and_env_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "")  # empty counts as unset
    a = fingerprint_secret(tmp_path / "a")
    b = fingerprint_secret(tmp_path / "b")
    assert a != b
    monkeypatch.setenv(ENV, "fake-test-secret-2")
    assert fingerprint_secret(tmp_path / "a") == b"fake-test-secret-2"
    # Copying the file's text into the variable keeps fingerprints.
    monkeypatch.setenv(ENV, (tmp_path / "a" / ".fingerprint_secret").read_text().strip())
    assert fingerprint_secret() == a


def test_bad_secret_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    (tmp_path / ".fingerprint_secret").write_text("")
    with pytest.raises(RuntimeError) as e:
        fingerprint_secret(tmp_path)
    assert "delete it" in str(e.value) and "\n" not in str(e.value)


def test_racing_threads_end_with_one_secret(tmp_path):
    # Bypass the per-process cache and lock: every thread tries to create the file at the same moment.
    path = tmp_path / ".fingerprint_secret"
    barrier = threading.Barrier(16)
    results, errors = [], []

    def worker():
        try:
            barrier.wait()
            results.append(keys._load_or_create_secret(path))
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - a thread reports every failure below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 16 and len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [".fingerprint_secret"]


def test_racing_processes_end_with_one_secret(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != ENV}
    code = (
        "import sys; from core.engine.keys import fingerprint_secret; "
        "print(fingerprint_secret(sys.argv[1]).decode())"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(out.strip())
    assert len(set(outs)) == 1
    assert outs[0] == (tmp_path / ".fingerprint_secret").read_text().strip()
    assert [p.name for p in tmp_path.iterdir()] == [".fingerprint_secret"]


# ---------------------------------------------------------------------------------------------------------
# Pure: no network, no logging, never raises


def test_no_network_and_no_logging(monkeypatch, caplog):
    def refuse(*a, **k):
        raise AssertionError("key intake must not open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    caplog.set_level("DEBUG")
    for _, raw, *_ in REJECTED:
        intake(raw)
    for _, raw in ACCEPTED_PASTES:
        intake(raw)
    assert caplog.records == []


def test_fuzz_never_raises_and_never_echoes():
    rng = random.Random(7)
    alphabet = BASE62 + " \n\t_-.*…'\"`é\u200b\xa0$:=;,/" + "\u0430\u4e2d"
    prefixes = ["", RK_TEST, RK_LIVE, SK_LIVE, PK_TEST, "whsec_", "Bearer ", "RK_TEST_", "rk_", "ghp_"]
    for _ in range(3000):
        raw = rng.choice(prefixes) + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        it = intake(raw)
        if it.accepted:
            assert it.key is not None and str(it.key).startswith(("rk_live_", "rk_test_"))
            assert re.fullmatch(r"rk_(live|test)_[A-Za-z0-9]{24,247}", str(it.key))
        else:
            assert it.key is None
            _one_sentence(it.info.problem)
        assert len(it.info.masked) <= 60
        tail = re.sub(r"[^A-Za-z0-9]", "", raw)[8:]
        if len(tail) >= 12 and not it.info.masked.startswith("("):
            # prefix + … + at most 4 characters
            assert len(it.info.masked.split("…")[-1]) <= 4 or it.reason == "several_keys"
