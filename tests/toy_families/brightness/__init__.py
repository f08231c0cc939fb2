"""A throw-away family that exists only in the tests: a regressor of an image's mean
brightness. It is not a classifier (a ``regress`` signature, a float label, r² for blessing), so
it shows that a family plugs into the registry, the pipeline and the conformance tests through
its own folder and one ``registry.register`` line, without the classifier kind."""
