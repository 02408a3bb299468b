"""Evaluation: metrics, paired statistics, baselines and the report."""
