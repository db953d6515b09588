"""Storage adapters of the log port: in-memory (tests, ephemeral use) and SQL (SQLite, PostgreSQL).
All SQL of pactledger lives under this package."""
