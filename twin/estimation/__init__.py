"""State estimation in the loop of a live twin (section ``estimation``).

The physics is :mod:`models.estimation` (weighted least squares on the solver model, with
bad-data detection); this package lays the ingested field sensors out as its
measurements (:mod:`twin.estimation.layout`), runs it every step as a simulator
(:mod:`twin.estimation.simulator`) and plans it into the run
(:mod:`twin.estimation.component`).
"""
