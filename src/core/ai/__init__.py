"""The AI provider port, its two adapters, the daily token budget and the gateway slices use.

Shared by the `ai` (drafts) and `conversations` slices; imports no slice, no middleware and no
observability module (metrics and spans are wired around it in `src/main.py`).
"""
