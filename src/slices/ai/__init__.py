"""AI drafts: `POST /api/v1/ai/drafts` writes a draft with the AI provider, within the
caller's daily token budget, through the content slice's own create command."""
