"""Residents' reports of problems in town (category, photo, place, text), the staff inbox, status pushes."""
