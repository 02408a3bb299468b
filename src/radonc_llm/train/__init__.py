"""Fine-tuning: the training loop, batching, checkpoints and export."""
