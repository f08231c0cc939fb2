"""The brand study's VGG16 spatial-attention brand classifier family."""
