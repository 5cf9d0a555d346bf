"""The Towerwatch cloud: ingest, stores, alarm and patrol services, and the REST API."""
