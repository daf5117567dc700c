"""What the agent keeps on disk: store.py (SQLite, counters), ledger.py (the inference rows,
retention), spool.py (the one ledger writer), clock.py (the retention clock), atomic_file.py."""
