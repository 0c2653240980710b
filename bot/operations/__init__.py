"""Operations on a running environment: restart, cache clear, DB connection reset, backup and restore."""
