"""Which upstream serves a request: config, the provider catalog, discovery and the routing table."""
