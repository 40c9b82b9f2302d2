"""Application shell: configuration, database, LINE gateway, staff auth and admin layout."""
