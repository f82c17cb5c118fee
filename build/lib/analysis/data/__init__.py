"""Reading, validating and transforming customer tables: the built-in datasets, user CSVs,
column transforms, joined categorical variables, simulated data with known truth, and 0/1
outcomes."""
