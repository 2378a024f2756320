"""The plant: the ``assets`` and ``tariff`` components (schema, resolution, world)."""
