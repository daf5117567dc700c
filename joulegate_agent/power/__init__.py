"""Power levels: an ordered ladder of settings that change the box's draw while it infers.

knobs.py reads and writes one platform setting each; discovery.py finds them; ladder.py turns
them into levels; controller.py sets a level under a lease with a dwell time; journal.py keeps
the box's original settings so they come back after a stop or a crash; costs.py learns what each
level costs from the ledger; simulated.py gives the simulated board levels; calibrate.py fills
the cost table.
"""
