"""`pulse demo`: the deterministic demo-shop event generator (``generator``)."""
