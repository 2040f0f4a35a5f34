"""Key intake: turn whatever a tenant pasted into a safe `KeyInfo` and, if it is a restricted key, a `SecretKey`.

    it = SecretKey.parse(raw)   # the one parse, at the edge where the key comes in (it is `intake(raw)`)
    it.info   # core.engine.result.KeyInfo: kind, mode, masked, fingerprint, problem; safe to show, store and log
    it.key    # SecretKey or None; set only when it.info.accepted (a well-formed rk_live_/rk_test_ key)
    it.key.info                      # the same KeyInfo: the key carries it, so nothing parses the key again
    str(it.key)                      # the key itself, for the one place that sends it to Stripe
    repr(it.key), f"{it.key}"        # only the masked form, so a stray log line cannot leak it

Pure functions: no network, no logging; the only side effect is creating the fingerprint secret file once.

Normalisation (each step is listed in `Intake.notes`): ANSI colour codes and invisible format characters
(zero-width space/joiners, BOM, soft hyphen, bidi marks) are removed; surrounding whitespace, quotes
(' " ` “ ” ‘ ’ « » …), trailing , ; : and labels such as `Bearer `, `Authorization: Bearer `,
`STRIPE_KEY=`, `export STRIPE_API_KEY=`, `stripe_key: ` are peeled off, repeatedly; a key broken over
several lines (or several space-separated pieces, which is what some browsers make of a pasted line break)
is joined when the first piece starts with a Stripe prefix and the others are only letters, digits and `_`.

Classification: `kind` is one of restricted | secret | organization | publishable | webhook_secret |
sandbox_claim | other_secret | unknown | empty (see core.engine.result.KeyInfo). Only restricted keys whose body is
24..247 base62 characters (255 in all at most) are accepted: Stripe publishes no fixed length, so there is
no fixed-length pattern here. Every rejection has its own one-sentence `problem` and a machine-readable
`Intake.reason`.

Masked forms never show more than the prefix and the last 4 characters of the body (none when the body
is shorter than 8); text that is not a recognisable key is shown as "(N characters)".

Fingerprints: `fp_` + the first 16 bytes of HMAC-SHA256(secret, key), hex. Accepted keys get one. A rejected
input gets one only when it is a well-formed Stripe key of another kind (sk_, sk_org, pk_, whsec_, rkcs_
with a complete, valid body), so the same wrong key pasted again can be recognised; truncated, masked,
malformed input and other providers' secrets get none. The secret is the UTF-8 bytes of
KEYHEALTH_FINGERPRINT_SECRET when that is set and not empty, else the text of `<DATA_DIR>/.fingerprint_secret`
(64 hex characters, created once, mode 0600); copying the file's text into the variable keeps fingerprints.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, NoReturn

from core import config
from core.engine.result import KeyInfo, Mode, is_mode

__all__ = [
    "Intake",
    "Pasted",
    "SecretKey",
    "as_intake",
    "fingerprint",
    "fingerprint_secret",
    "intake",
    "mask",
    "FINGERPRINT_SECRET_ENV",
    "FINGERPRINT_SECRET_FILE",
]

FINGERPRINT_SECRET_ENV = "KEYHEALTH_FINGERPRINT_SECRET"
FINGERPRINT_SECRET_FILE = ".fingerprint_secret"

MIN_BODY = 24  # shorter bodies are reported as truncated
MAX_KEY = 255  # Stripe: newer keys can be up to 255 characters
MAX_BODY = MAX_KEY - len("rk_live_")  # 247
MAX_PASTE = 10_000  # anything longer is refused before any parsing
ELLIPSIS = "…"
GUIDE_KEY_NAME = "API key for Pointai"  # the name the onboarding guide suggests for the key

ANY_RK = "rk_live_… or rk_test_…"
CREATE_PATH = "Developers → API keys → Create restricted key"

# ---------------------------------------------------------------------------------------------------------
# The key object


class SecretKey:
    """A normalised restricted key, with what intake learnt about it (`info`: masked form, mode, fingerprint).
    `str()` gives the key; `repr()` and `format()` give only the masked form.

    Made only by parsing a paste: `SecretKey.parse(text)` (the Intake: `.key` is the SecretKey when the paste is
    an accepted restricted key, `.info` always). A key is parsed once, where it comes in (a page's field, the
    CLI's standard input, a recheck line, a key source); after that it travels as this object (or the Intake of
    a refused paste), and only the code that sends it to Stripe reads `str(key)`.
    It cannot be pickled (so it cannot end up in a cache or on disk by accident); copy() returns itself.
    """

    __slots__ = ("_value", "_masked", "_info")
    _value: str
    _masked: str
    _info: KeyInfo
    parses: ClassVar[int] = 0  # pastes parsed in this process (tests count them: a key is parsed once per edge)

    def __init__(self, value: str, info: KeyInfo):
        if not isinstance(value, str) or not value or not isinstance(info, KeyInfo) or not info.accepted:
            raise TypeError("SecretKey needs a non-empty str and its accepted KeyInfo: use SecretKey.parse(text)")
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "_masked", info.masked)
        object.__setattr__(self, "_info", info)

    @staticmethod
    def parse(raw: str | bytes | None) -> Intake:
        """Parse a paste (see `intake`): the one way a SecretKey is made. Never raises for any text."""
        return intake(raw)

    @property
    def info(self) -> KeyInfo:
        """What may be shown, stored and logged about this key (kind, mode, masked form, fingerprint)."""
        return self._info

    @property
    def parsed(self) -> Intake:
        """This key as the Intake of an accepted paste (for code that takes either)."""
        return Intake(self._info, self)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("SecretKey is immutable")

    @property
    def masked(self) -> str:
        return self._masked

    @property
    def mode(self) -> Mode | None:
        return self._info.mode

    def __str__(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"SecretKey({self._masked})"

    def __format__(self, spec: str) -> str:
        return format(self._masked, spec)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretKey):
            return hmac.compare_digest(self._value.encode(), other._value.encode())
        return NotImplemented

    def __hash__(self) -> int:
        return hash((SecretKey, self._value))

    def __len__(self) -> int:
        return len(self._value)

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a SecretKey cannot be pickled; keep only its KeyInfo (masked form and fingerprint)")

    def __copy__(self) -> SecretKey:
        return self

    def __deepcopy__(self, memo: Any) -> SecretKey:
        return self


@dataclass(frozen=True)
class Intake:
    info: KeyInfo
    key: SecretKey | None = None
    reason: str = "ok"  # machine-readable cause, e.g. "publishable", "truncated", "other_secret:github"
    notes: tuple[str, ...] = ()  # what normalisation removed, e.g. ("removed surrounding quotes",)

    @property
    def accepted(self) -> bool:
        return self.info.accepted and self.key is not None


Pasted = SecretKey | Intake  # what an edge hands on: an accepted key, or the parsed paste (accepted or refused)


def as_intake(key: Pasted | str | bytes | None) -> Intake:
    """The parsed paste behind `key`, without parsing it again: an Intake as it is, a SecretKey's own. Raw text
    (a script's or a test's, which is then the edge) is parsed here, once."""
    if isinstance(key, Intake):
        return key
    if isinstance(key, SecretKey):
        return key.parsed
    return intake(key)


# ---------------------------------------------------------------------------------------------------------
# Fingerprints

_SECRET_CACHE: dict[str, bytes] = {}
_SECRET_LOCK = threading.Lock()


def fingerprint_secret(directory: str | os.PathLike[str] | None = None) -> bytes:
    """The HMAC secret for fingerprints (see the module doc). The file secret is cached per process and directory."""
    conf = config.settings()
    if conf.fingerprint_secret:
        return conf.fingerprint_secret.encode("utf-8")
    path = Path(directory if directory is not None else conf.data_dir) / FINGERPRINT_SECRET_FILE
    cache_key = os.path.abspath(path)
    with _SECRET_LOCK:
        cached = _SECRET_CACHE.get(cache_key)
        if cached is None:
            cached = _load_or_create_secret(path)
            _SECRET_CACHE[cache_key] = cached
        return cached


def _read_secret(path: Path) -> bytes:
    text = path.read_text(encoding="ascii", errors="replace").strip()
    if len(text) < 32 or not re.fullmatch(r"[0-9a-fA-F]+", text):
        raise RuntimeError(
            f"{path} is not a valid fingerprint secret (expected 64 hex characters); "
            f"delete it so it is recreated, or set {FINGERPRINT_SECRET_ENV}."
        )
    return text.encode("ascii")


def _exclusive_write(path: Path, text: str) -> None:
    """Create `path` with `text`, mode 0600; FileExistsError if it already exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_or_create_secret(path: Path) -> bytes:
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    text = secrets.token_bytes(32).hex() + "\n"
    # Write the complete secret to a private temporary file, then hard-link it into place: the link either
    # creates the final name with the whole content or fails because another process got there first, so
    # racing processes all end up reading one secret and nobody ever reads a half-written file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    _exclusive_write(tmp, text)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links: exclusive create of the final name
            try:
                _exclusive_write(path, text)
            except FileExistsError:
                pass
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    return _read_secret(path)


def fingerprint(key: str | SecretKey, secret: bytes | None = None) -> str:
    """`fp_` + 32 hex characters: a keyed hash of the key, stable for a given secret."""
    value = str(key)
    digest = hmac.new(secret if secret is not None else fingerprint_secret(), value.encode("utf-8"), hashlib.sha256)
    return "fp_" + digest.hexdigest()[:32]


# ---------------------------------------------------------------------------------------------------------
# Recognising prefixes

_STRIPE_HEAD = re.compile(r"(rkcs|whsec|rk|sk|pk)_", re.I)
# A Stripe key prefix anywhere (a base62 body never contains "_", so this cannot match inside one key's body).
_STRIPE_ANYWHERE = re.compile(r"(?:rk|sk|pk)_(?:live|test)_|sk_org_|whsec_|rkcs_", re.I)
_STRIPE_PIECE = re.compile(r"(?:rkcs|whsec|rk|sk|pk)_", re.I)

# (pattern, reason suffix, what it looks like, prefix shown in the masked form)
_OTHER_SECRETS: tuple[tuple[re.Pattern[str], str, str, str], ...] = tuple(
    (re.compile(p), r, name, shown)
    for p, r, name, shown in (
        (r"^github_pat_[A-Za-z0-9_]{20,}$", "github", "a GitHub fine-grained access token", "github_pat_"),
        (r"^ghp_[A-Za-z0-9]{20,}$", "github", "a GitHub personal access token", "ghp_"),
        (r"^gh[ousr]_[A-Za-z0-9]{20,}$", "github", "a GitHub app or OAuth token", "gh"),
        (r"^glpat-[A-Za-z0-9_\-]{16,}$", "gitlab", "a GitLab personal access token", "glpat-"),
        (r"^sk-ant-[A-Za-z0-9_\-]{16,}$", "anthropic", "an Anthropic API key", "sk-ant-"),
        (r"^sk-proj-[A-Za-z0-9_\-]{16,}$", "openai", "an OpenAI project API key", "sk-proj-"),
        (r"^sk-(?:svcacct|admin)-[A-Za-z0-9_\-]{16,}$", "openai", "an OpenAI service or admin key", "sk-"),
        (r"^sk-[A-Za-z0-9_\-]{20,}$", "openai", "an OpenAI API key", "sk-"),
        (r"^(?:AKIA|ASIA)[A-Z0-9]{16}$", "aws", "an AWS access key ID", "AKIA"),
        (r"^xox[abposr]-[A-Za-z0-9\-]{10,}$", "slack", "a Slack token", "xox"),
        (r"^xapp-[A-Za-z0-9\-]{10,}$", "slack", "a Slack app token", "xapp-"),
        (r"^AIza[0-9A-Za-z_\-]{30,}$", "google", "a Google API key", "AIza"),
        (r"^eyJ[A-Za-z0-9_\-]{8,}(?:\.[A-Za-z0-9_\-]*){0,2}$", "jwt", "a JSON Web Token (JWT)", "eyJ"),
        (r"^access_token\$(?:production|sandbox)\$[A-Za-z0-9$_\-]{8,}$", "paypal",
         "a PayPal/Braintree access token", "access_token$"),
        (r"^SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}$", "sendgrid", "a SendGrid API key", "SG."),
        (r"^shp(?:at|ss|ca|pa)_[A-Za-z0-9]{16,}$", "shopify", "a Shopify access token", "shp"),
        (r"^hf_[A-Za-z0-9]{20,}$", "huggingface", "a Hugging Face token", "hf_"),
        (r"^npm_[A-Za-z0-9]{20,}$", "npm", "an npm access token", "npm_"),
        (r"^sq0(?:atp|csp)-[A-Za-z0-9_\-]{16,}$", "square", "a Square access token", "sq0"),
    )
)

_MASK_MARKS = ("…", "...", "*", "•", "●", "◦", "∙", "·")
_QUOTES = "'\"`“”‘’„‚«»‹›「」"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_BEARER = re.compile(r"bearer(?:\s+|\s*:\s*|$)", re.I)
_AUTH_HEADER = re.compile(r"authorization\s*:\s*", re.I)
_ASSIGNMENT = re.compile(
    r"(?:export\s+|set\s+|\$env:)?[\"']?([A-Za-z_][A-Za-z0-9_.\-]*)[\"']?\s*(?::=|=>|=|:)\s*", re.I
)
_URL = re.compile(r"(?:[a-z][a-z0-9+.\-]*://|www\.|(?:[a-z0-9\-]+\.)*stripe\.com(?:[/:?#]|$))", re.I)
_BASE62 = re.compile(r"[A-Za-z0-9]+")
_WRAPPED_PIECE = re.compile(r"[A-Za-z0-9_]+")


class _Stripe(NamedTuple):
    kind: str
    mode: Mode | None
    prefix: str  # as typed, e.g. "rk_test_" or "RK_TEST_" or "rk_prod_"
    body: str
    bad_segment: str | None  # "prod" in rk_prod_; None when the mode is right or absent
    lowercase: bool


def _parse_stripe(s: str) -> _Stripe | None:
    m = _STRIPE_HEAD.match(s)
    if not m:
        return None
    head = m.group(1).lower()
    pos = m.end()
    mode: Mode | None = None
    bad = None
    if head == "whsec":
        kind = "webhook_secret"
    elif head == "rkcs":
        kind = "sandbox_claim"
        mm = re.match(r"(live|test)_", s[pos:], re.I)
        if mm:
            mode = _mode(mm.group(1))
            pos += mm.end()
    elif head == "sk" and re.match(r"org", s[pos:], re.I):
        kind = "organization"
        mm = re.match(r"org_?(?:(live|test)_)?", s[pos:], re.I)
        assert mm is not None  # "org" matched just above
        if mm.group(1):
            mode = _mode(mm.group(1))
        pos += mm.end()
    else:
        kind = {"rk": "restricted", "sk": "secret", "pk": "publishable"}[head]
        mm = re.match(r"([A-Za-z]{1,8})_", s[pos:])
        if mm:
            if mm.group(1).lower() in ("live", "test"):
                mode = _mode(mm.group(1))
            else:
                bad = mm.group(1)
            pos += mm.end()
    prefix = s[:pos]
    return _Stripe(kind, mode, prefix, s[pos:], bad, prefix == prefix.lower())


def _mode(text: str) -> Mode | None:
    """ "live" or "test" in any case, as a Mode."""
    low = text.lower()
    return low if is_mode(low) else None


def _other_secret(s: str) -> tuple[str, str, str] | None:
    for pattern, reason, name, shown in _OTHER_SECRETS:
        if pattern.match(s):
            return reason, name, shown
    return None


# ---------------------------------------------------------------------------------------------------------
# Masking


_SAFE_TAIL = re.compile(r"[A-Za-z0-9_\-]{4}")


def _mask_parts(prefix: str, body: str) -> str:
    # The last 4 are shown only when they are letters, digits, _ or -: a masked form is printed on terminals
    # and stored, so it must never carry control characters, escape sequences, markup or quotes from the input.
    tail = body[-4:] if len(body) >= 8 else ""
    return prefix + ELLIPSIS + (tail if _SAFE_TAIL.fullmatch(tail) else "")


def _chars(n: int) -> str:
    return f"({n} character{'s' if n != 1 else ''})"


def mask(text: str | SecretKey | None) -> str:
    """The safe form of a key: prefix + "…" + last 4, or "(N characters)" for text that is not a key."""
    if text is None or text == "":
        return "(empty)"
    if isinstance(text, SecretKey):
        return text.masked
    s = str(text)
    st = _parse_stripe(s)
    if st is not None:
        return _mask_parts(st.prefix, st.body)
    other = _other_secret(s)
    if other is not None:
        shown = other[2]
        return _mask_parts(shown, s[len(shown):])
    return _chars(len(s))


# ---------------------------------------------------------------------------------------------------------
# Normalisation


def _normalise(raw: str) -> tuple[str, list[str], bool]:
    """Peel what people paste around a key. Returns (text, notes, is_url)."""
    notes: list[str] = []
    s = raw
    t = _ANSI.sub("", s)
    if t != s:
        notes.append("removed terminal colour codes")
        s = t
    invisible = sum(1 for c in s if unicodedata.category(c) == "Cf")
    if invisible:
        s = "".join(c for c in s if unicodedata.category(c) != "Cf")
        notes.append(f"removed {invisible} invisible character{'s' if invisible != 1 else ''}")
    for _ in range(20):
        before = s
        t = s.strip()
        if t != s:
            _note(notes, "removed surrounding whitespace")
            s = t
        t = s.rstrip(",;:").rstrip()
        if t != s:
            _note(notes, "removed trailing punctuation")
            s = t
        if s and (s[0] in _QUOTES or s[-1] in _QUOTES):
            s = s.strip(_QUOTES)
            _note(notes, "removed surrounding quotes")
            continue
        if len(s) >= 2 and s[0] + s[-1] in ("()", "[]", "<>", "{}"):
            s = s[1:-1]
            _note(notes, "removed surrounding brackets")
            continue
        if _URL.match(s):
            return s, notes, True
        m = _AUTH_HEADER.match(s)
        if m:
            s = s[m.end():]
            _note(notes, "removed an 'Authorization:' header name")
            continue
        m = _BEARER.match(s)
        if m:
            s = s[m.end():]
            _note(notes, "removed a 'Bearer' prefix")
            continue
        m = _ASSIGNMENT.match(s)
        if m and not _STRIPE_HEAD.match(m.group(1)) and not _other_secret(m.group(1)):
            s = s[m.end():]
            _note(notes, "removed a variable name (NAME=)")
            continue
        if s == before:
            break
    return s, notes, False


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


# ---------------------------------------------------------------------------------------------------------
# Intake


def _result(
    kind: str, mode: Mode | None, masked: str, problem: str | None, reason: str, notes: Iterable[str],
    fp: str | None = None, key: SecretKey | None = None,
) -> Intake:
    info = KeyInfo(kind, mode, masked, fp, problem, None if problem is None else reason)
    return Intake(info, key, reason, tuple(notes))


def _rk_for(mode: str | None) -> str:
    return f"rk_{mode}_…" if mode in ("live", "test") else ANY_RK


def _describe_char(c: str) -> str:
    if c == "_":
        return "an underscore"
    if c == "-":
        return "a hyphen"
    if c.isspace():
        return "a space" if c == " " else f"a whitespace character (U+{ord(c):04X})"
    if unicodedata.category(c) == "Cc":
        return f"a control character (U+{ord(c):04X})"
    if ord(c) > 127:
        return f"a non-ASCII character (U+{ord(c):04X})"
    return f"the character '{c}'"


def _unreadable(raw: str) -> Intake | None:
    """Text too long to be a key, or with nothing visible in it."""
    if len(raw) > MAX_PASTE:
        return _result(
            "unknown", None, _chars(len(raw)),
            f"The pasted text is {len(raw)} characters long, far more than any Stripe key; paste only the restricted "
            f"key ({ANY_RK}).",
            "paste_too_long", [],
        )
    visible = "".join(c for c in _ANSI.sub("", raw) if unicodedata.category(c) != "Cf")
    if not visible.strip():
        return _result(
            "empty", None, "(blank)",
            f"Only spaces or invisible characters were pasted; paste the restricted key itself ({ANY_RK}).",
            "whitespace", [],
        )
    return None


def _url_or_label(s: str, is_url: bool, notes: list[str]) -> Intake | None:
    """The normalised text is a web address, or nothing was left after the quotes and labels."""
    if is_url:
        return _result(
            "unknown", None, _chars(len(s)),
            "This is a web address, not a key; open Developers → API keys in the Stripe Dashboard and copy the "
            f"restricted key's value ({ANY_RK}) instead.",
            "url", notes,
        )
    if not s:
        return _result(
            "empty", None, "(blank)",
            "Only quotes or a label such as Bearer or STRIPE_KEY= were pasted, with no key after them; paste the "
            f"restricted key itself ({ANY_RK}).",
            "label_only", notes,
        )
    return None


def _several_keys(s: str, notes: list[str]) -> Intake | None:
    """Several keys at once: strict prefixes anywhere, or loose ones starting whitespace/comma-separated pieces."""
    starts = [m.start() for m in _STRIPE_ANYWHERE.finditer(s)]
    pieces_loose = [p for p in re.split(r"[\s,;]+", s) if _STRIPE_PIECE.match(p)]
    if max(len(starts), len(pieces_loose)) < 2:
        return None
    if len(starts) >= 2:
        bounds = starts + [len(s)]
        parts = [s[bounds[i]:bounds[i + 1]] for i in range(len(starts))]
    else:
        parts = pieces_loose
    parts = [re.split(r"[\s,;]+", p.strip(" ,;\t\r\n"))[0] for p in parts]
    shown = [mask(p) for p in parts]
    words = {2: "Two", 3: "Three", 4: "Four", 5: "Five"}
    count = words.get(len(parts), f"Several ({len(parts)})")
    more = " and more" if len(shown) > 3 else ""
    listed = " and ".join(shown) if len(shown) == 2 else f"{', '.join(shown[:3])}{more}"
    return _result(
        "unknown", None, " + ".join(shown[:3]) + (" + …" if len(shown) > 3 else ""),
        f"{count} keys were pasted at once ({listed}); paste only the restricted key ({ANY_RK}), one key per "
        "check.",
        "several_keys", notes,
    )


def _masked_key(s: str, st: _Stripe, notes: list[str]) -> Intake:
    """A Stripe key with the Dashboard's mask in it (rk_live_…abcd): not the key itself."""
    compact = "".join(s.split())
    # What follows the mask is what the Dashboard itself shows (at most 4 letters or digits).
    tail_match = re.search(r"[A-Za-z0-9]{0,4}$", compact)
    compact_st = _parse_stripe(compact)
    assert tail_match is not None and compact_st is not None  # {0,4} always matches; compact keeps st's prefix
    masked = compact_st.prefix + ELLIPSIS + tail_match.group(0)
    if st.kind == "restricted":
        fix = (
            "copy the full key instead (Reveal key in Developers → API keys, or create a new restricted key if "
            "it can no longer be revealed)"
        )
    else:
        fix = f"ask the tenant for the full restricted key ({_rk_for(st.mode)}) instead"
    return _result(
        st.kind, st.mode, masked,
        f"This is a masked key ({masked}) as the Dashboard or an error message shows it, not the key itself; "
        f"{fix}.",
        "masked", notes,
    )


def _text_around_key(s: str, st: _Stripe | None, pieces: list[str], notes: list[str]) -> Intake:
    """Several words that are not one wrapped key: a key with text after or before it, another secret, the key's
    name, or a sentence."""
    if st is not None:
        first = _parse_stripe(pieces[0])
        assert first is not None  # st parsed, and the first piece starts the same way
        where = next(i for i, c in enumerate(s) if c.isspace()) + 1
        return _result(
            first.kind, first.mode, _mask_parts(first.prefix, first.body),
            f"The key contains a space at position {where} followed by other text; paste only the key "
            f"({first.prefix}…), with nothing before or after it.",
            "space_and_text", notes,
        )
    m = _STRIPE_PIECE.search(s)
    if m and (m.start() == 0 or not s[m.start() - 1].isalnum()):
        key_part = re.split(r"[\s,;]+", s[m.start():])[0].strip(_QUOTES)
        inner = _parse_stripe(key_part)
        assert inner is not None  # key_part starts with a Stripe prefix (_STRIPE_PIECE)
        return _result(
            inner.kind, inner.mode, _mask_parts(inner.prefix, inner.body),
            f"There is other text before the key ({_mask_parts(inner.prefix, inner.body)}); paste only the "
            "key, with nothing before or after it.",
            "text_before_key", notes,
        )
    for p in pieces:
        other = _other_secret(p.strip(_QUOTES))
        if other:
            return _other_result(p.strip(_QUOTES), other, notes)
    n_words = len(pieces)
    if GUIDE_KEY_NAME.lower() in s.lower() or re.search(r"\bkey\b", s, re.I):
        return _result(
            "unknown", None, _chars(len(s)),
            f"This looks like the key's name (such as “{GUIDE_KEY_NAME}”), not the key itself; in Developers → "
            "API keys reveal that restricted key and copy its value, which starts with rk_live_ or rk_test_.",
            "key_name", notes,
        )
    return _result(
        "unknown", None, _chars(len(s)),
        f"The pasted text is {n_words} words rather than a key; paste only the restricted key ({ANY_RK}), with "
        "nothing before or after it.",
        "sentence", notes,
    )


def intake(raw: str | bytes | None) -> Intake:
    """Normalise and classify a pasted key. Never raises for any text; see the module doc. Counted in
    SecretKey.parses (call it as SecretKey.parse: the one parse at an edge)."""
    SecretKey.parses += 1
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("utf-8", "replace")
    if raw is None or raw == "":
        return _result(
            "empty", None, "(empty)", f"No key was entered; paste the tenant's restricted key ({ANY_RK}).", "empty", []
        )
    if not isinstance(raw, str):
        raise TypeError(f"intake() takes the pasted text as str, not {type(raw).__name__}")
    early = _unreadable(raw)
    if early is not None:
        return early
    s, notes, is_url = _normalise(raw)
    early = _url_or_label(s, is_url, notes) or _several_keys(s, notes)
    if early is not None:
        return early

    st = _parse_stripe(s)
    if st is not None and any(m in s for m in _MASK_MARKS):
        return _masked_key(s, st, notes)
    pieces = s.split()
    if len(pieces) > 1:
        joined = "".join(pieces)
        if not (_STRIPE_HEAD.match(joined) and all(_WRAPPED_PIECE.fullmatch(p) for p in pieces[1:])):
            return _text_around_key(s, st, pieces, notes)
        # A key broken over lines (or into space-separated pieces, as some browsers paste line breaks).
        s = joined
        _note(notes, f"joined {len(pieces)} pieces of a wrapped key")
        st = _parse_stripe(s)

    if st is None:
        return _classify_other(s, notes)
    return _classify_stripe(s, st, notes)


def _other_result(s: str, other: tuple[str, str, str], notes: list[str]) -> Intake:
    reason, name, shown = other
    masked = _mask_parts(shown, s[len(shown):])
    return _result(
        "other_secret", None, masked,
        f"This looks like {name} ({shown}…), not a Stripe key; don't pass it around (consider revoking it, since it "
        f"has been shared) and paste the Stripe restricted key ({ANY_RK}) instead.",
        f"other_secret:{reason}", notes,
    )


def _classify_other(s: str, notes: list[str]) -> Intake:
    other = _other_secret(s)
    if other:
        return _other_result(s, other, notes)
    n = len(s)
    if any(m in s for m in _MASK_MARKS):
        return _result(
            "unknown", None, _chars(n),
            "This looks like a masked key without its prefix, not the key itself; ask the tenant for the full "
            f"restricted key ({ANY_RK}).",
            "masked_fragment", notes,
        )
    if re.fullmatch(r"acct_[A-Za-z0-9]+", s):
        return _result(
            "unknown", None, "acct_…",
            "This is a Stripe account ID (acct_…), which names an account but grants no access; ask the tenant for a "
            f"restricted key ({ANY_RK}) from that account.",
            "account_id", notes,
        )
    if _BASE62.fullmatch(s) and MIN_BODY <= n <= MAX_BODY:
        return _result(
            "unknown", None, _chars(n),
            f"This looks like a key without its prefix ({n} characters); copy the whole key, including the rk_live_ or "
            "rk_test_ at its start.",
            "no_prefix", notes,
        )
    return _result(
        "unknown", None, _chars(n),
        f"The pasted text ({n} characters) is not a Stripe key; paste the restricted key, which starts with rk_live_ "
        "or rk_test_.",
        "unknown", notes,
    )


def _fingerprint_if_complete(st: _Stripe, s: str) -> str | None:
    """Rejected keys of another Stripe kind get a fingerprint only when they look complete and well-formed."""
    if not st.lowercase or st.bad_segment is not None or len(s) > MAX_KEY:
        return None
    body_ok = re.fullmatch(r"[A-Za-z0-9+/=]+" if st.kind == "webhook_secret" else r"[A-Za-z0-9]+", st.body)
    if body_ok and MIN_BODY <= len(st.body) <= MAX_BODY:
        return fingerprint(s)
    return None


def _classify_stripe(s: str, st: _Stripe, notes: list[str]) -> Intake:
    masked = _mask_parts(st.prefix, st.body)
    kind, mode = st.kind, st.mode

    def reject(problem: str, reason: str, fp: str | None = None) -> Intake:
        return _result(kind, mode, masked, problem, reason, notes, fp)

    if not st.lowercase:
        return reject(
            f"The prefix {st.prefix} is in capital letters but Stripe keys are case-sensitive and start in lowercase "
            f"({st.prefix.lower()}); copy the key again exactly as the Dashboard shows it rather than retyping it.",
            "uppercase_prefix",
        )

    if kind != "restricted":
        fp = _fingerprint_if_complete(st, s)
        want = _rk_for(mode)
        shown = st.prefix
        if kind == "publishable":
            problem = (
                f"This is a publishable key ({shown}…), which only identifies an account; ask the tenant for a "
                f"restricted key ({want}) created under {CREATE_PATH}."
            )
        elif kind == "webhook_secret":
            problem = (
                f"This is a webhook signing secret ({shown}…), which only verifies webhook events and cannot "
                f"call the API; ask the tenant for a restricted key ({ANY_RK}) from Developers → API keys."
            )
        elif kind == "organization":
            problem = (
                f"This is an organization key ({shown}…), which reaches every account in a Stripe organization "
                f"and needs a Stripe-Context header; ask the tenant for a restricted key ({want}) created in the one "
                "account to connect."
            )
        elif kind == "sandbox_claim":
            problem = (
                f"This is a claimable-sandbox key ({shown}…) from the Stripe CLI, not an account's restricted "
                f"key; ask the tenant for a restricted key ({want}) created under {CREATE_PATH}."
            )
        else:  # secret
            scope = {"live": "the live account", "test": "the account's test mode"}.get(mode or "", "the account")
            problem = (
                f"This is a standard secret key ({shown}…) with full access to {scope}; the tenant should not share it "
                f"but create a restricted key ({want}) "
                f"under {CREATE_PATH} instead, and should roll this secret key since it has been shared."
            )
        return reject(problem, kind, fp)

    # restricted
    if st.bad_segment is not None:
        return reject(
            f"The prefix {st.prefix} is not one Stripe uses; restricted keys start with rk_live_ or rk_test_, so copy "
            "the key again from Developers → API keys.",
            "wrong_prefix",
        )
    if mode is None:
        return reject(
            "The key starts with rk_ but has no live_ or test_ after it; copy the complete key, which starts with "
            "rk_live_ or rk_test_.",
            "no_mode",
        )
    if len(s) > MAX_KEY:
        return reject(
            f"The key is {len(s)} characters long, more than the {MAX_KEY} a Stripe key can have; something was pasted "
            "along with it, so copy just the key again.",
            "too_long",
        )
    bad = next((i for i, c in enumerate(st.body) if not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9")), None)
    if bad is not None:
        c = st.body[bad]
        return reject(
            f"The key contains {_describe_char(c)} at position {len(st.prefix) + bad + 1}, which a Stripe key never "
            "has; copy the key again directly from the Dashboard rather than retyping it.",
            "bad_character",
        )
    if not st.body:
        return reject(f"Only the prefix {st.prefix} was pasted, without the rest of the key; copy the complete "
            "key.", "prefix_only")
    if set(st.body) <= {"x", "X"}:
        return reject(
            f"This is a placeholder ({st.prefix}xxx…) as documentation shows it, not a real key; paste the tenant's "
            "actual restricted key.",
            "placeholder",
        )
    if len(st.body) < MIN_BODY:
        return reject(
            f"The key looks truncated ({len(st.body)} characters after {st.prefix}, too few for a Stripe key); copy "
            "the complete key.",
            "truncated",
        )
    info = KeyInfo(kind, mode, _mask_parts(st.prefix, st.body), fingerprint(s))
    return Intake(info, SecretKey(s, info), "ok", tuple(notes))
