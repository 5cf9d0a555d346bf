"""Simulated security patrols: NTAG 424 DNA tags that produce SUN URLs, and a walker that
walks guards' rounds against the cloud API."""
