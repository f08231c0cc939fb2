"""The dual encoder family's transformed features (written by its Transform fragment)."""

CAPTION = "dual_encoder_caption"  # the record's normalised caption ("" when it has none)
