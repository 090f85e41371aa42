"""The store: SQLite file and migrations, typed rows, the transactional outbox, bulk writes."""
