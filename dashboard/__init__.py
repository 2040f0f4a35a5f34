"""Streamlit glue the pages share: the sign-in gate, the session's service, widgets. Not under pages/, so
Streamlit never serves it as a page; not in core/, which stays importable without Streamlit."""
