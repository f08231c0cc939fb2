"""The category family's transformed features (written by its Transform fragment)."""

CATEGORY_LABEL = "category_label"  # index into the CATEGORY_VOCABULARY file, -1 when unlabelled
CATEGORY_VOCABULARY = "category"  # TF Transform vocabulary file name
SUPER_CATEGORY = "super_category"  # super-category of image/class/text ("" when absent)
