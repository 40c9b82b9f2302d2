"""Surveys in the chat: built by staff, attached to a notice or a rich-menu button, answered with quick replies."""
