"""Composite models: several families' pushed models served as one
(see ``trainer.families.spec.CompositeSpec``)."""
