"""Usage events and the KPI reports built from them."""
