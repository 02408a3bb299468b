"""radonc-llm: fine-tune open LLMs on radiation oncology records and evaluate them like a clinical study."""

import warnings

__version__ = "0.1.0"

# PEFT (0.21) reads transformers' deprecated `is_gradient_checkpointing` whenever it wraps a
# model: a FutureWarning per process and per load that tells our users nothing.
warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
