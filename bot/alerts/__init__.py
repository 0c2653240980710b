"""Alertmanager alerts: the webhook, alert groups and their messages."""
