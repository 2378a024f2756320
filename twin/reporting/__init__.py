"""Interactive HTML reports of runs: one run, or several side by side.

:mod:`twin.reporting.outcome` reads a run directory and says how the run ended,
:mod:`twin.reporting.runs` holds a run as the page sees it, :mod:`twin.reporting.page`
assembles sections into one self-contained page, :mod:`twin.reporting.sections` lists
them. ``twin report`` (:mod:`twin.report`) writes the page.
"""
