"""The store: the SQLAlchemy engine, schema and queries, atomic rounds, the installation's
identity, the summary columns, Alembic migrations and the streaming export."""
