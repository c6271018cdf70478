"""What every part stands on: spaces and field specs, nested observations, env facts, step
validation, the ring bookkeeping."""
