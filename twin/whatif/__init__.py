"""What-if studies: the money and carbon of a run against a reference run.

- :mod:`twin.whatif.finance`: capital recovery, NPV, payback (pure functions);
- :mod:`twin.whatif.schema`: the ``economics`` and ``carbon`` sections;
- :mod:`twin.whatif.reference`: the reference run (given, or made beside the run);
- :mod:`twin.whatif.economics`, :mod:`twin.whatif.carbon`: their KPIs and report sections;
- :mod:`twin.whatif.campaign_chart`: "what should I build" from a campaign's summary;
- :mod:`twin.whatif.component`: the ``whatif`` component.
"""
