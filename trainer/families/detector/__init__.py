"""The garment detector family (in progress: Model Garden experiment building; not registered
yet, see ``model_garden``)."""
