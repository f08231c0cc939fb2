"""The EfficientNet garment-category classifier family (single label, softmax)."""
