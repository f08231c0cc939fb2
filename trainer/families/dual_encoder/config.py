"""The dual encoder family's config and its per-profile presets."""

from __future__ import annotations

import dataclasses

from pipeline_config import AugmentationConfig, check
from trainer.backbones.configs import PRETRAINED_LITE0, EfficientNetConfig

LOSSES = ("softmax", "sigmoid")


@dataclasses.dataclass(frozen=True)
class DualEncoderConfig(EfficientNetConfig):
    """A CLIP/ALIGN-style dual encoder (pipeline study): an EfficientNet image tower, a small
    BERT text tower, projections to ``embedding_dim`` and L2-normalised embeddings trained with
    the symmetric contrastive loss over scaled cosine similarities (``loss="softmax"``, CLIP) or
    the pairwise sigmoid loss (``loss="sigmoid"``, SigLIP, reported better at small batches).

    Which towers train: ``transfer_mode`` applies to the image tower as in the other families
    (``feature_extraction`` keeps it frozen, its features computed once); ``train_text_tower``
    says whether the text tower trains. The study's three modes are ``feature_extraction`` with
    ``train_text_tower=False`` (only the projections train), ``fine_tune`` with it False (image
    tower fine-tuned) and ``fine_tune`` with it True (both). A text tower built from this config
    starts from random weights, so it must train; only a pretrained ``text_encoder_dir`` may be
    frozen. ``blessing_threshold`` applies to text → image Recall@5 on the eval split.
    """

    # The text tower: a BERT built with keras-hub (L-2 H-128 A-2 up to L-4 H-512), its WordPiece
    # vocabulary learned from the training captions (at most ``vocabulary_size`` tokens).
    text_layers: int = 2
    text_hidden: int = 128
    text_heads: int = 2
    text_intermediate: int = 512
    vocabulary_size: int = 1000
    max_sequence_length: int = 32
    # A local SavedModel text encoder (string captions → [batch, d] float32 ``default`` or
    # ``pooled_output`` output) to use instead of the BERT above; never downloaded.
    text_encoder_dir: str = ""
    train_text_tower: bool = True
    # The projections: ``projection_layers`` - 1 hidden Dense+GELU+dropout layers, then a
    # linear layer to ``embedding_dim``.
    projection_layers: int = 1
    projection_dropout: float = 0.1
    embedding_dim: int = 256
    loss: str = "softmax"
    # The learned temperature starts at 0.07 (a logit scale of 1/0.07) and the scale is clipped
    # at max_logit_scale (CLIP); SigLIP's learned bias starts at -10.
    initial_temperature: float = 0.07
    max_logit_scale: float = 100.0
    initial_sigmoid_bias: float = -10.0
    # Zero-shot classification prompts: {label} is a category name, an attribute value or tag.
    # Worded as the catalog's captions are: on the synthetic eval split "a person wearing a
    # {label}" scored 0.415 zero-shot accuracy where the study's "a photo of a {label}" scored
    # 0.391 (the same model).
    prompt: str = "a person wearing a {label}"
    # The catalog index built after each push (schemas.catalog_index): "hnsw" (approximate,
    # sub-linear) or "flat" (exact; for catalogs whose embeddings spread evenly, where HNSW
    # recall drops: scripts/benchmark_search.py).
    index_kind: str = "hnsw"
    transfer_mode: str = "feature_extraction"
    augmentation: AugmentationConfig = AugmentationConfig(flip=True, rotation=0.0, zoom=0.0,
                                                          translation=0.0)

    def __post_init__(self):
        super().__post_init__()
        check(1 <= self.text_layers <= 12 and self.text_heads >= 1
              and self.text_hidden % self.text_heads == 0,
              "dual_encoder text tower needs 1..12 layers and text_hidden divisible by "
              "text_heads")
        check(self.text_intermediate >= 1, "dual_encoder text_intermediate must be >= 1")
        check(16 <= self.vocabulary_size <= 100_000,
              "dual_encoder vocabulary_size must be 16..100000")
        check(4 <= self.max_sequence_length <= 512,
              "dual_encoder max_sequence_length must be 4..512")
        check(self.train_text_tower or bool(self.text_encoder_dir),
              "dual_encoder: a text tower built from the config starts from random weights and "
              "must train (train_text_tower=true); only a pretrained text_encoder_dir may be "
              "frozen")
        check(self.projection_layers >= 1 and self.embedding_dim >= 2,
              "dual_encoder needs projection_layers >= 1 and embedding_dim >= 2")
        check(0.0 <= self.projection_dropout < 1.0,
              "dual_encoder projection_dropout must be in [0, 1)")
        check(self.loss in LOSSES, f"dual_encoder loss must be one of {LOSSES}")
        check(0.0 < self.initial_temperature < 1.0 and
              self.max_logit_scale >= 1.0 / self.initial_temperature,
              "dual_encoder initial_temperature must be in (0, 1) with max_logit_scale >= "
              "1 / initial_temperature")
        check("{label}" in self.prompt, "dual_encoder prompt must contain {label}")
        check(self.index_kind in ("hnsw", "flat"), "dual_encoder index_kind must be hnsw or "
              "flat")

    @property
    def trains_image_tower(self) -> bool:
        return self.transfer_mode != "feature_extraction"


def smoke() -> DualEncoderConfig:
    return DualEncoderConfig(**PRETRAINED_LITE0, backbone_size=64, batch_size=8, epochs=1,
                             steps_per_epoch=3, eval_steps=2, text_layers=1, text_hidden=32,
                             text_heads=2, text_intermediate=64, vocabulary_size=200,
                             max_sequence_length=16, embedding_dim=32, blessing_threshold=0.0)


def default() -> DualEncoderConfig:
    # The README run on a 2-core CPU: the Lite0 image tower frozen and run once over the
    # training images, the smallest study BERT (L-2 H-128) and the projections train on the
    # cached features. At batch 32 the softmax loss beat the sigmoid one here (synthetic eval:
    # text → image Recall@5 0.717 vs 0.684, zero-shot accuracy 0.470 vs 0.391 at the same
    # prompt), and a mirrored second view of the images did not help (Recall@5 0.729 and
    # zero-shot 0.525 with one view, 0.717 and 0.492 with two).
    return DualEncoderConfig(**PRETRAINED_LITE0, backbone_size=160, batch_size=32, epochs=20,
                             steps_per_epoch=60, learning_rate=1e-3, cached_feature_views=1,
                             loss="softmax", early_stopping_patience=4,
                             blessing_threshold=0.05)


def full() -> DualEncoderConfig:
    # On an accelerator: both towers fine-tuned at the backbone's size, a bigger BERT and batch
    # (the softmax loss needs many negatives per batch).
    return DualEncoderConfig(**PRETRAINED_LITE0, batch_size=256, epochs=30, text_layers=4,
                             text_hidden=256, text_heads=4, text_intermediate=1024,
                             vocabulary_size=8000, projection_layers=2, learning_rate=1e-4,
                             transfer_mode="hybrid", frozen_epochs=5, cached_feature_views=2,
                             fine_tune_learning_rate=1e-5, early_stopping_patience=5,
                             blessing_threshold=0.3)


def ccp() -> DualEncoderConfig:
    # CCP photos with captions built from their tags, on this machine's CPU.
    return DualEncoderConfig(**PRETRAINED_LITE0, backbone_size=224, batch_size=32, epochs=20,
                             steps_per_epoch=60, cached_feature_views=2, loss="softmax",
                             early_stopping_patience=5, blessing_threshold=0.05)


PRESETS = {"smoke": smoke, "default": default, "full": full, "ccp": ccp}
