"""Running pixelgrade as a long-lived service: what it counts, how it says it is healthy, how
it logs (``watch``, ``serve``, ``hook``)."""
