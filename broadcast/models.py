"""Notices and their deliveries (the notices issue)."""
