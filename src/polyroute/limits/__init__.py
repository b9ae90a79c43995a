"""Global rate limits, concurrency and budgets per API key (see ``base`` for the semantics)."""
