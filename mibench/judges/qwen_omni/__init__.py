"""Qwen-Omni judges (Qwen2.5-Omni, Qwen3-Omni thinkers) through transformers."""
