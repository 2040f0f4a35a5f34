"""Presentation helpers the pages share, none of them importing Streamlit: the grid (grid.py), the charts
(charts/), every label and colour (palette.py), user text for markdown sinks (text.py), CSV cells safe in a
spreadsheet (csv_safe.py), amounts with their currency (money.py) and audit details as sentences (audit.py)."""
