"""The brand family's transformed features (written by its Transform fragment)."""

BRAND_LABEL = "brand_label"  # index into the BRAND_VOCABULARY file, -1 when unlabelled
BRAND_VOCABULARY = "brand"  # TF Transform vocabulary file name
