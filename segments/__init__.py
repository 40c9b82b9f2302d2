"""Residents (LINE users with their declared attributes and consent) and segment rules."""
