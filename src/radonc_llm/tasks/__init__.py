"""Curated cases -> chat-formatted (diagnosis -> answer) examples for the three tasks."""
