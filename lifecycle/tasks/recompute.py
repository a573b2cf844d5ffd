"""Recomputation tasks: after an event, and the nightly run."""
