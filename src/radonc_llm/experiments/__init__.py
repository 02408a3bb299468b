"""Experiments beyond the main study, each a recipe of pipeline stages."""
