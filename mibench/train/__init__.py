"""Training MusicInfuser adapters: data preparation, the training loop, layer selection."""
