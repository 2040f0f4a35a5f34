"""Key Health core: everything the dashboard, the CLI and the tests share. No Streamlit in here."""

__version__ = "0.1.0"
