"""What-if studies: the money and carbon of a run against a reference run.

- :mod:`twin.whatif.finance`: capital recovery, NPV, payback (pure functions);
- :mod:`twin.whatif.schema`: the ``economics`` and ``carbon`` sections;
- :mod:`twin.whatif.reference`: the reference run (given, or made beside the run);
- :mod:`twin.whatif.economics`, :mod:`twin.whatif.carbon`: their KPIs;
- :mod:`twin.whatif.assumptions`: what the figures assumed, in words;
- :mod:`twin.whatif.campaign_chart`: "what should I build" grids from a campaign's summary;
- :mod:`twin.whatif.component`: the ``whatif`` component.

Their report sections and the campaign heatmaps are drawn by :mod:`twin.reporting`
(:mod:`twin.reporting.whatif`, :mod:`twin.reporting.what_to_build`), with the one set of
KPI labels of the report (:mod:`twin.reporting.labels`).
"""
