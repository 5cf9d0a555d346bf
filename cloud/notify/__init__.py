"""Notifications: a notifier interface with webhook (signed, retried) and log delivery."""
