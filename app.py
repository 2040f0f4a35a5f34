"""Key Health: the router, page config and shared sidebar. Nothing else."""
import streamlit as st

st.set_page_config(page_title="Key Health", page_icon="🔑", layout="wide")
st.title("Key Health")
st.write("The dashboard is being built.")
