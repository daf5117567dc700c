"""Inference windows and what admits them: service.py opens and finishes windows into ledger
rows; gate.py holds the solar gate's lease and the deferral queue."""
