"""The field emulator (``twin field SCENARIO``): a "true" plant publishing its sensors.

It runs a scenario in-process (its own seed, faults and sensor imperfections), measures
every sensor of a plan (buses, branches, assets, the point of connection) with the noise
of its class (:mod:`models.sensors`), and publishes the readings over MQTT the way field
gateways do (per-sensor topics, JSON arrays or SenML packs per gateway and interval) with
seeded impairments (jitter, reordering, duplicates, dropouts, clock skew), on the clock
of the live twin (``w = wall_start + (T - start) / speed``). Its ground truth goes to
``truth.parquet``, ``sensors.parquet`` and ``field.json``.
"""
