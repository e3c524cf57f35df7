"""Storage tests: the measurement store, its migrations and exports, on SQLite and PostgreSQL."""
