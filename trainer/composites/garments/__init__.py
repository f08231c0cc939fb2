"""The garments composite: detect → crop → classify."""
