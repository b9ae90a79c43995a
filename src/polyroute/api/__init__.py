"""The HTTP surface, kept thin: parse, route, relay or render."""
