"""The poisoning sweep: configurations (split before any tuning), attacks, runner parts."""
