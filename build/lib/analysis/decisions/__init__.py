"""Segments into decisions: scoring new customers, migration and drift, campaign response and
targeting rules."""
