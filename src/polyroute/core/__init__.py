"""The canonical form: pure values every wire format translates to and from."""
