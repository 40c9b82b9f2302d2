"""LINE inbound: the webhook, the event inbox, the dispatch table and one module per event kind."""
