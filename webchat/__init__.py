"""The homepage channel: the embeddable chat widget, its JSON API and the public FAQ pages.

Like handlers/ for LINE, this package turns what a resident sent into a call of the faq service
and the service's result into this channel's messages (JSON for the chat page, HTML for the FAQ
pages); it never builds LINE messages. `init_app` is called by bot.app.
"""
