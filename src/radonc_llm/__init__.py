"""radonc-llm: fine-tune open LLMs on radiation oncology records and evaluate them like a clinical study."""

__version__ = "0.1.0"
