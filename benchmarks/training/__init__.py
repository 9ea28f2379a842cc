"""Training recipes on real and synthetic data: variants over seeds, Pareto plots, shipping rules."""
