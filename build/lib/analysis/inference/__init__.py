"""One K's posterior: EM starts, NUTS sampling, relabelling, memberships, assignments, modes,
chain stacking, diagnostics, the population pass of a subsampled fit, profiles and predictive
comparisons of the observed pairs (local dependence)."""
