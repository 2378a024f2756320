"""The ``sensors`` component: what the plant reports of every quantity it measures."""
