"""dtif: low-latency ANN-to-SNN conversion."""
