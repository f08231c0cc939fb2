"""The garments composite's spec: detector → crop → category and attributes, and the image's
brand: one answer per image (the pipeline study's merged model)."""

from schemas.serving_api import SERVING_DEFAULT
from trainer.families.spec import IMAGES, CompositeSpec, InfraProbe, SignatureSpec

INPUT_NAME = "inputs"

SPEC = CompositeSpec(
    name="garments",
    families=("detector", "category", "attributes", "brand"),
    builder="trainer.composites.garments.model.build",
    signatures=(SignatureSpec(SERVING_DEFAULT, INPUT_NAME, IMAGES),),
    infra_probe=InfraProbe(signature=SERVING_DEFAULT, input_name=INPUT_NAME, input_kind=IMAGES,
                           check="trainer.composites.garments.model.check_answer"),
)
