"""Notices, schedules, the dispatcher and delivery records (see the notices issue)."""
