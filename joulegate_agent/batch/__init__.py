"""The solar batch queue: OpenAI-compatible Files and Batches APIs whose requests run on the rig
while the gate admits batch work, each metered as a ledger row, finished by a deadline."""
