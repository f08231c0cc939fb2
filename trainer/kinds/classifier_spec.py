"""What a classifier family's spec declares (no TensorFlow: spec modules import this)."""

from schemas.serving_api import CLASSIFY, SERVING_DEFAULT, SERVING_IMAGES, TRANSFORM_FEATURES
from trainer.families.spec import classify_signature, examples_signature, images_signature

# The signatures every exported classifier has (trainer.kinds.classifier.ClassifierModule).
SIGNATURES = (examples_signature(SERVING_DEFAULT), images_signature(SERVING_IMAGES),
              classify_signature(CLASSIFY), examples_signature(TRANSFORM_FEATURES))
