"""Video generators, registered by name through the model cards in `baselines/` (see mibench.cards)."""
