"""Lightning + Hydra: training system, data, callbacks, train/export entry points."""
