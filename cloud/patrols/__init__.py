"""Security patrols: checkpoints, routes, schedules, tours, NFC scans verified with
NTAG 424 DNA SUN, and patrol exceptions."""
