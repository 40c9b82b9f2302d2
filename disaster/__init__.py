"""Disaster mode (the account's face switched for an emergency), shelters from open data, nearest lookup."""
