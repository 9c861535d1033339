"""The task ledger: models, migrations and the repository the pipeline writes through."""
