"""The alarm lifecycle (ISA-18.2): raising from edge events and cloud rules, acknowledge,
shelve, suppression, out of service, re-alarm and escalation, alarm-load figures."""
