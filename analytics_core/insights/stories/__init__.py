"""The insight stories, one module per kind: ``anomaly``, ``trend``, ``change``
(previous period), ``bottleneck``, ``capacity`` (forecasts), and ``incidents`` (one
story per incident); ``common`` holds what they share. ``feed`` runs them all."""
