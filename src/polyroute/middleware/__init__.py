"""Pure ASGI middleware, one class per module; the order is declared once, in ``app.py``."""
