"""The CLIP-style image-text dual encoder family."""
