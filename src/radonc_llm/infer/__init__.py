"""Prediction: batched generation, constrained decoding, backends, answer extraction, the resumable prediction file."""
