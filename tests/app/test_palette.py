"""The palette (core/ui/palette.py) meets WCAG 2.1's 3:1 for graphics (SC 1.4.11) against white, and against the
dark theme's background; the theme follows the user's choice (no forced light theme)."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from core.ui.palette import (
    DARK_BACKGROUND,
    MIN_GRAPHICS_CONTRAST,
    STATUS_ICON,
    STATUS_SYMBOL,
    WHITE,
    chart_colours,
    contrast_ratio,
)

ROOT = Path(__file__).resolve().parents[2]


def test_contrast_ratio_matches_wcag_reference_values():
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast_ratio("#767676") == pytest.approx(4.54, abs=0.01)  # the well-known 4.5:1 grey
    assert contrast_ratio("#f59f00") < 3  # the old amber (2.1:1) the issue named fails
    assert contrast_ratio("#adb5bd") < 3  # and the old grey


@pytest.mark.parametrize(("name", "colour"), sorted(chart_colours().items()))
def test_every_chart_colour_reaches_3_to_1_on_white_and_dark(name, colour):
    assert contrast_ratio(colour, WHITE) >= MIN_GRAPHICS_CONTRAST, f"{name} {colour} on white"
    assert contrast_ratio(colour, DARK_BACKGROUND) >= MIN_GRAPHICS_CONTRAST, f"{name} {colour} on dark"


def test_each_status_has_an_icon_and_a_shape_besides_its_colour():
    assert len(set(STATUS_ICON.values())) == len(STATUS_ICON)
    assert len(set(STATUS_SYMBOL.values())) == len(STATUS_SYMBOL)


def test_theme_follows_the_users_choice():
    theme = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8")).get("theme", {})
    assert "base" not in theme and "backgroundColor" not in theme and "textColor" not in theme
