"""The audit log as people and auditors see it: anchors, export and verify, the `/taisun audit` view.
The writer and the hash chain are in bot.core.audit (jobs write audit rows)."""
