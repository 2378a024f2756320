"""Bridges between the twin and the outside world (files, brokers, databases)."""
