"""Fault injection: the ``faults`` component (schema, resolution, world, labels)."""
