"""InfluxDB: the twin's history as line protocol (1.x HTTP API or 2.x/3.x).

- :mod:`adapters.influx.lineprotocol`: the schema and the encoder;
- :mod:`adapters.influx.writer`: batched, retried, spooled, non-blocking writes;
- :mod:`adapters.influx.sink`: the mosaik sink of a run;
- :mod:`adapters.influx.load`: write a finished run's ``results.parquet``;
- :mod:`adapters.influx.server`: an ``influxd`` child process (tests, benchmarks).
"""
