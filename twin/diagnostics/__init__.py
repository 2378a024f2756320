"""Diagnostics: health indices, fault detection and diagnosis, alerts and their scores."""
