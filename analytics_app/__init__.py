"""The Streamlit app (Home.py, app_pages/, ui/), shipped with the package and run by
``analytics serve``."""
