"""How many segments: PSIS-LOO, WAIC, moment matching and K-fold, the K sweep with its stopping
rule, the scikit-learn GMM + BIC baseline, the choice of K and its wording."""
