"""Streamlit dashboard: reads run directories, never trains."""
