"""The multi-label EfficientNet attribute tagger family (sigmoid per attribute, masked partial
labels)."""
