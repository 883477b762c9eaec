"""Hand-written baselines and Stable-Baselines3 glue behind one small policy interface."""
