"""InfluxDB: the twin's history as line protocol (1.x HTTP API or 2.x/3.x).

- :mod:`adapters.influx.lineprotocol`: the schema and the encoder;
- :mod:`adapters.influx.transport`: configuration, HTTP, credentials, TLS, and what
  each answer of the server means;
- :mod:`adapters.influx.writer`: batched, retried, spooled, non-blocking writes;
- :mod:`adapters.influx.spool`: batches on disk, counted exactly from the files;
- :mod:`adapters.influx.stats`: what became of every point;
- :mod:`adapters.influx.sink`: the mosaik sink of a run;
- :mod:`adapters.influx.load`: write a finished run's ``results.parquet``;
- :mod:`adapters.influx.server`: an ``influxd`` child process (tests, benchmarks).
"""
