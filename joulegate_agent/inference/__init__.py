"""Inference windows and what admits them: service.py opens and finishes windows into ledger
rows; gate.py holds the solar gate's lease; admission.py asks it, the deferral queue and the
concurrency limit whether a request may run; events.py fans events out to SSE clients."""
