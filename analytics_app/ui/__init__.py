"""Streamlit layer: the shared sidebar, cached data access and page components."""
