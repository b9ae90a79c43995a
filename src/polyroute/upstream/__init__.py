"""Talking to providers: the pooled HTTP session, credentials, timeouts and error mapping."""
