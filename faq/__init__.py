"""FAQ: knowledge base, Japanese normaliser and matcher for residents' questions."""
