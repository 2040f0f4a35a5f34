"""Features around the engine: sample data, the sample transaction and the fleet recheck."""
