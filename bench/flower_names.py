"""Names of the Flower strategies the scorecard can add (``bench/flower_robust.py``), kept apart
so the scorecard need not import ``flwr``."""

FLOWER_STRATEGIES = (
    "flwr_fedavg",
    "flwr_krum",
    "flwr_multikrum",
    "flwr_trimmed_mean",
    "flwr_median",
)
