"""Garbage: the sorting dictionary and collection calendars from the city's open data, item lookup, reminders."""
