"""Security operations (#18): the guide's periodic tasks (weekly dependency scan, monthly secret rotation,
quarterly access review, yearly penetration test), tracked, posted when due, nudged when overdue, and
proven by the audit log."""
