"""Incidents, runbooks and runbook runs, with their Slack messages."""
