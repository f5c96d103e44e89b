"""Analytics over the anomaly-detection platform's stored data; never imports streamlit."""
