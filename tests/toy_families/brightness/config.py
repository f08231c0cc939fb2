"""The brightness family's config and presets."""

import dataclasses

from pipeline_config import TrainingConfig


@dataclasses.dataclass(frozen=True)
class BrightnessConfig(TrainingConfig):
    """``blessing_threshold`` is the squared Pearson correlation (r²) it must reach."""

    transfer_mode: str = "fine_tune"


def smoke() -> BrightnessConfig:
    return BrightnessConfig(batch_size=8, epochs=1, steps_per_epoch=3, blessing_threshold=0.0,
                            dropout=0.0, learning_rate=1e-2)


PRESETS = {"smoke": smoke, "default": smoke, "full": smoke}
