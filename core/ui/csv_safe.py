"""CSV cells a spreadsheet reads as text, never as a formula. No Streamlit here.

OWASP's rule (owasp.org/www-community/attacks/CSV_Injection): a cell that starts with `=`, `+`, `-`, `@`, a tab
or a carriage return gets a leading `'`, so Excel, LibreOffice and Google Sheets show it as text. The full-width
forms (＝ ＋ － ＠) and a leading line feed are treated the same way. Every CSV Key Health writes (the grid
download, the sample-data downloads, the audit download) goes through `frame_csv`; the CLI's tables put user
text through `safe_cell`. Numbers stay numbers: only text is touched (a negative amount is not a formula).

    frame_csv(df)                    # str, index=False
    safe_cell("=HYPERLINK(...)")     # "'=HYPERLINK(...)"
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where a frame is written: the CLI's tables only need safe_cell
    import pandas as pd

    from core.features.sample import Dataset

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def safe_cell(value: Any) -> Any:
    """The value with a `'` in front when it is text that a spreadsheet would read as a formula."""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_START) else value
    if isinstance(value, (dict, list, tuple)):  # written with str(): judge that text
        text = str(value)
        return "'" + text if text.startswith(FORMULA_START) else value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` with every text cell (and column name) passed through `safe_cell`."""
    import pandas as pd

    out = frame.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype):
            out[col] = s.map(safe_cell).astype(object)
    out.columns = [safe_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out


def frame_csv(frame: pd.DataFrame, **kwargs: Any) -> str:
    """`frame` as CSV text (no index unless asked), safe to open in a spreadsheet. Lines end in CRLF (RFC 4180):
    Python's csv writer quotes a field holding a character of the line terminator, so with CRLF a lone CR or
    LF inside a cell is quoted too, instead of starting a new row whose first cell could be a formula."""
    kwargs.setdefault("index", False)
    kwargs.setdefault("lineterminator", "\r\n")
    return safe_frame(frame).to_csv(**kwargs)


def dataset_csv(dataset: Dataset) -> bytes:
    """A sample dataset's rows as CSV bytes (Stripe's amounts in the smallest unit), safe to open in a
    spreadsheet: product names and descriptions come from the tenant's own account, so a cell that starts like a
    formula gets a `'`."""
    return frame_csv(dataset.frame).encode("utf-8")


__all__ = ["FORMULA_START", "dataset_csv", "frame_csv", "safe_cell", "safe_frame"]
