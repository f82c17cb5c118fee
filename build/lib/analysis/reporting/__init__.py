"""What a person reads: the report's tables, figures and HTML, and the prior and posterior
predictive checks."""
