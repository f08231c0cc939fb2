"""The attribute family's transformed features (written by its Transform fragment)."""

# [len(ATTRIBUTE_VOCABULARY)] float per example: 1.0 the attribute is on, 0.0 it is off, -1.0
# unknown: the record annotates no attribute of that attribute's family (e.g. CCP photos carry
# only ``item:`` tags, so their colours are unknown, not absent). Unknown entries are masked in
# the loss and in every metric.
ATTRIBUTE_LABELS = "attribute_labels"
UNKNOWN = -1.0
