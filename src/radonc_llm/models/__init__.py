"""Model registry and loading: short names, GGUF/hub/local models, training runs with adapters."""
