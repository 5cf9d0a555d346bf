"""Work orders: creation by policy or by hand, transitions by role, SLA clocks and breaches,
follow-up, photos."""
