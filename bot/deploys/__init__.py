"""Deploys and rollbacks: the operations, the one deploy history query, the deploy form and status lines."""
