"""The one redaction step (core.engine.redact, issue 17 item 2): the key found anywhere, glued or cut, including any
run of at least 8 of its characters; and wired where Stripe's text or a key source's stderr comes in."""
from __future__ import annotations

import random
import string

import pytest

from core.engine.redact import RUN, Known, redact
from core.store import redact as store_redact  # the same function, re-exported

RNG = random.Random(17)
KEY = "rk_test_51Red" + "".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(87))
LIVE = "rk_live_51Red" + "".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(87))


def runs(text: str, key: str = KEY) -> list[str]:
    """Every run of RUN characters of `key` in `text`, except its public prefix alone (rk_test_)."""
    return sorted({key[i:i + RUN] for i in range(1, len(key) - RUN + 1) if key[i:i + RUN] in text})


@pytest.mark.parametrize("text", [
    f"Invalid API Key provided: {KEY}",
    f"GET /v1/x?api_key%3D{KEY}&expand=1",  # glued after %3D: no word boundary in front
    f"token{KEY}",  # glued after another word
    f"{KEY}trailing",  # glued before one
    f"cut: {KEY[:15]}…",  # truncated: 15 characters, the prefix and 7 of the secret
    f"tail: …{KEY[-12:]}",  # its end only
    f"part: {KEY[40:48]} and {KEY[60:75]}",  # pieces of its middle, 8 and 15 long
    f"twice {KEY} {KEY[3:]}",
    f"{KEY}{KEY}",
])
def test_no_run_of_8_characters_of_the_key_survives(text):
    out = redact(text, KEY)
    assert runs(out) == [], out


def test_a_key_made_ready_once_redacts_exactly_as_the_key_itself():
    """Known(key), which a sweep makes once and redacts every answer with, gives what redact(text, key) gives, on
    texts holding the key whole, cut, glued, in pieces, beside another key, or merely 4 of its characters (a
    piece that is no run); and it never shows the key itself."""
    known, rng = Known(KEY), random.Random(3)
    texts = []
    for _ in range(400):
        i, n = rng.randrange(len(KEY)), rng.choice([3, 4, 7, 8, 9, 20, 100])
        filler = "".join(rng.choice(string.ascii_letters + " _%=") for _ in range(rng.randrange(0, 40)))
        texts.append(filler + KEY[i:i + n] + rng.choice(["", " ", "x", LIVE[:20]]) + filler[::-1])
    texts += [f"on account 'acct_1Red{KEY[13:30]}' {KEY}", KEY[8:40], "no key here at all"]
    for t in texts:
        assert redact(t, known) == redact(t, KEY), t
        assert redact(t, known, LIVE) == redact(t, KEY, LIVE), t
    assert KEY not in repr(known) and KEY not in str(known)
    assert sum(redact(t, known) != t for t in texts) > 100  # most texts held a run: the comparison was not idle


def test_the_store_uses_the_same_step():
    assert store_redact is redact


def test_the_whole_key_becomes_its_masked_form_and_other_text_stays():
    assert redact(f"a {KEY} b", KEY) == f"a rk_test_…{KEY[-4:]} b"
    assert redact(f"x%3D{KEY}&y", KEY) == f"x%3Drk_test_…{KEY[-4:]}&y"
    assert redact(f"cut {KEY[:15]} end", KEY) == "cut rk_test_… end"  # cut short: its prefix only
    assert redact(f"cut {KEY[1:15]} end", KEY) == "cut [redacted] end"
    assert redact(f"only {KEY[20:27]} end", KEY) == f"only {KEY[20:27]} end"  # 7 characters: not a run of 8
    masked = f"rk_test_…{KEY[-4:]}"
    assert redact(f"key {masked} and rk_test_ alone", KEY) == f"key {masked} and rk_test_ alone"  # its prefix is public
    assert redact(None, KEY) is None and redact("", KEY) == ""
    assert redact(f"both {KEY} {LIVE[:30]}", KEY, LIVE, None, "") == f"both rk_test_…{KEY[-4:]} rk_live_…{LIVE[26:30]}"


def test_without_the_key_the_shape_of_any_stripe_secret_is_masked_glued_or_cut():
    assert redact(f"api_key%3D{KEY}") == f"api_key%3Drk_test_…{KEY[-4:]}"
    assert redact(f"Bearer{LIVE}") == f"Bearerrk_live_…{LIVE[-4:]}"
    assert redact(f"{KEY[:15]}") == "rk_test_…"  # cut short: not even its last characters
    assert redact("sk_live_" + "Ab1" * 10) == "sk_live_…1Ab1"
    assert redact("rk_test_…a1b2 is masked already") == "rk_test_…a1b2 is masked already"
    assert redact("acct_1234567890abcdef, req_abcdefghijklmn, pi_3Pabcdefghijkl") == \
        "acct_1234567890abcdef, req_abcdefghijklmn, pi_3Pabcdefghijkl"


def test_the_key_sources_stderr_is_redacted_with_the_keys_it_printed(tmp_path):
    """A key glued after %3D or another word, or cut to 15 characters, on a failing source's stderr."""
    import sys

    from core.features.keysource import SourceError, read_key_source

    for said in (f"fetch failed: GET /vault?token%3D{KEY}", f"fetch failed for word{KEY}",
                 f"fetch failed for {KEY[:15]}", f"fetch failed for …{KEY[30:50]}"):
        src = tmp_path / "src.py"
        src.write_text(f"import sys\nprint('Acme,{KEY}')\nsys.stderr.write({said!r} + '\\n')\nsys.exit(4)\n")
        with pytest.raises(SourceError) as e:
            read_key_source(f"{sys.executable} {src}")
        assert "exit status 4" in str(e.value) and "fetch failed" in str(e.value)
        assert runs(str(e.value)) == [], str(e.value)


def test_keys_sharing_a_head_are_each_masked_whole():
    """Two keys with a common head (a run of 8 shared): the other key glued to a word is still masked whole."""
    other = KEY[:20] + "".join(RNG.choice(string.ascii_letters) for _ in range(80))
    out = redact(f"vault: token%3D{KEY} word{other} cut {LIVE[:15]}", KEY)
    assert runs(out) == [] and runs(out, other) == [] and runs(out, LIVE) == [], out
    assert out == f"vault: token%3Drk_test_…{KEY[-4:]} wordrk_test_…{other[-4:]} cut rk_live_…"


def test_the_account_id_a_key_embeds_is_left_whole():
    """Stripe keys embed their account's id (sk_test_51H8x… for acct_1H8x…); answers name the account: it stays."""
    key = "rk_test_51KeyHealthDemoHealthy" + "Qw3Er4Ty5U" * 8
    text = f"on account 'acct_1KeyHealthDemoTest'. Key {key[:24]} and {key[30:50]}"
    out = redact(text, key)
    assert "account 'acct_1KeyHealthDemoTest'" in out
    assert runs(out.replace("acct_1KeyHealthDemoTest", ""), key) == [], out
