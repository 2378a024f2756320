"""Ingestion of a plant's field sensors from MQTT (section ``ingest``).

Modules: :mod:`~adapters.ingest.schema` (the section), :mod:`~adapters.ingest.units`
and :mod:`~adapters.ingest.mapping` (sensor keys to twin quantities),
:mod:`~adapters.ingest.decode` (payloads, bounded), :mod:`~adapters.ingest.window`
(clock skew, duplicates, step windows), :mod:`~adapters.ingest.limits` (plausibility),
:mod:`~adapters.ingest.store` (raw points in InfluxDB), :mod:`~adapters.ingest.pipeline`
(the per-message path), :mod:`~adapters.ingest.simulator` (the mosaik simulator),
:mod:`~adapters.ingest.stats` and :mod:`~adapters.ingest.component`.
"""
