"""The dashboard's one way of saying that the database failed: a sentence (core.store.errors) for a page to show.

    except Exception as e:
        st.error(database_problem(e, svc.rt.db, "The audit trail could not be read"))
        st.stop()

The sentence names the cause and the fix (read-only, corrupt, unreachable, timed out, ...), never a traceback;
it is markdown-escaped (a file path may hold `_` or `*`), so it is shown exactly as written. The log gets the
kind and the exception's type, never its message (which could quote input). No Streamlit in here.
"""
from __future__ import annotations

import logging

from core.store.db import Database
from core.store.errors import classify
from core.ui.text import md_escape

log = logging.getLogger("keyhealth")


def database_problem(exc: BaseException, db: Database | str | None, doing: str | None = None) -> str:
    """One markdown-safe sentence: `doing` (e.g. "The tenant list could not be read") because of the cause,
    and the fix. Without `doing`, the cause and the fix alone."""
    problem = classify(exc, db)
    log.error("database problem (%s, %s)%s", problem.kind, type(exc).__name__, f" while: {doing}" if doing else "")
    return md_escape(problem.because(doing) if doing else problem.sentence)
