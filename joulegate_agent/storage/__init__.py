"""What the agent keeps on disk: store.py (SQLite, counters), ledger.py (the inference rows,
retention), spool.py (the one ledger writer), housekeeping.py (retention pruning), clock.py (the
retention clock), atomic_file.py."""
