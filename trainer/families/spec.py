"""What the rest of the system asks of a model family: its spec.

A family is one folder under ``trainer/families/`` whose ``spec.py`` defines ``SPEC``, a
:class:`FamilySpec`. The pipeline, the run summary, the command line, the scripts and the tests
read specs from the registry (``trainer.families.registry``) and never name a family. A spec names
code by dotted path (``"package.module.attribute"``, resolved with :func:`resolve` where it runs),
so importing a spec imports no TensorFlow and no model code: ``pipeline/`` wires components from
specs without importing a model.

A :class:`CompositeSpec` declares a node built from several families' blessed models (e.g. detect
→ crop → classify); the pipeline wires it after the branches of the families it takes.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Optional

from schemas.serving_api import (CLASSIFY_INPUTS, CLASSIFY_METHOD, EXAMPLES_INPUT, IMAGES_INPUT,
                                 PREDICT_METHOD, SERVING_DEFAULT)

# How a signature's (or an infra-validation probe's) input is made from eval records.
EXAMPLES = "examples"  # the records' serialized tf.Examples, as they are
IMAGES = "images"  # the records' encoded images (image/encoded bytes)
TEXTS = "texts"  # the records' captions (fashion/caption; a stand-in where a record has none)
INPUT_KINDS = (EXAMPLES, IMAGES, TEXTS)

# How a family is evaluated before its Pusher.
TFMA = "tfma"  # tfx Evaluator with the family's TFMA EvalConfig
# components.offline_evaluator: the family's offline_evaluator on the eval split (metrics TFMA
# lacks: COCO, retrieval), blessed with its config's thresholds
OFFLINE = "offline"
CUSTOM = "custom"  # the family's own evaluator component, writing a ModelBlessing
EVALUATION_KINDS = (TFMA, OFFLINE, CUSTOM)


def resolve(dotted_path: str):
    """The object a ``package.module.attribute`` path names (imports the module)."""
    module, _, attribute = dotted_path.rpartition(".")
    if not module:
        raise ValueError(f"{dotted_path!r} is not a dotted path to a module attribute")
    try:
        return getattr(importlib.import_module(module), attribute)
    except AttributeError:
        raise ValueError(f"{module} has no attribute {attribute!r} ({dotted_path})") from None


@dataclasses.dataclass(frozen=True)
class SignatureSpec:
    """One signature of the family's exported SavedModel, as a client calls it."""

    name: str
    input_name: str
    input_kind: str  # EXAMPLES, IMAGES or TEXTS
    method_name: str = PREDICT_METHOD

    def __post_init__(self):
        if self.input_kind not in INPUT_KINDS:
            raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {self.input_kind!r}")


@dataclasses.dataclass(frozen=True)
class InfraProbe:
    """How the infra validator asks the served candidate: which signature, fed how, and the
    dotted path of ``check(outputs: dict of numpy arrays, rows: int)`` that raises ValueError on
    a wrong answer (default: every float output has one finite row per input)."""

    signature: str = SERVING_DEFAULT
    input_name: str = EXAMPLES_INPUT
    input_kind: str = EXAMPLES
    check: str = "components.infra_validator.logic.check_finite_rows"


@dataclasses.dataclass(frozen=True)
class EvaluationSpec:
    """How a family's candidate is evaluated and blessed.

    ``kind`` TFMA: ``factory(config) -> tfma.EvalConfig`` feeds TFX's Evaluator. ``kind``
    OFFLINE: the generic ``OfflineEvaluator`` component runs the family's ``offline_evaluator``
    (``factory`` is unused). ``kind`` CUSTOM:
    ``factory(config, examples, model, baseline_model) -> component`` whose outputs
    ``evaluation`` (ModelEvaluation) and ``blessing`` (ModelBlessing, written with
    ``trainer.evaluation.reports.record_blessing``) the report and the Pusher use.
    ``blessing_metric`` names the metric the config's ``blessing_threshold`` and
    ``min_improvement`` apply to, as the run summary names it.
    """

    kind: str
    factory: str
    blessing_metric: str

    def __post_init__(self):
        if self.kind not in EVALUATION_KINDS:
            raise ValueError(f"evaluation kind must be one of {EVALUATION_KINDS}")
        if self.kind != OFFLINE and not self.factory:
            raise ValueError(f"a {self.kind} evaluation needs its factory")


@dataclasses.dataclass(frozen=True)
class ComponentSpec:
    """An extra component of a family's branch. ``factory(model, examples) -> component`` gets
    the Trainer's model and the ExampleGen examples channels; with ``report_section`` its
    ``report`` output (a ``fashion.ReportSection``) is shown in the family's evaluation report."""

    id_suffix: str
    factory: str
    report_section: bool = False


@dataclasses.dataclass(frozen=True)
class CatalogIndexSpec:
    """How an embedding family's pushed model indexes the catalog after its Pusher
    (``components.catalog_index``): ``signature`` on serialized records (input
    ``input_name``) answers ``output`` embeddings; the index is ``kind`` (``hnsw`` or ``flat``)
    with ``options`` (``schemas.catalog_index.build`` keyword arguments, as pairs). A family
    config field ``index_kind`` (when it has one) overrides ``kind``."""

    signature: str
    input_name: str
    output: str
    kind: str = "hnsw"
    options: tuple = ()


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    """Everything the system asks of one model family (see the module docstring).

    Attributes:
      name: the family's name: its config section (``--set <name>.epochs=3``), its pushed
        model's name and serving folder.
      config_class: the family's frozen config dataclass (a ``pipeline_config.TrainingConfig``).
      presets: ``{profile: callable returning the family's config for that profile}``.
      run_fn: the TFX Trainer ``run_fn``.
      transform_fragment: the family's Transform fragment (``(inputs, custom_config) -> {feature:
        tensor}``), or None when the family trains on the raw ExampleGen examples.
      evaluation: how its candidate is evaluated and blessed.
      signatures: every serving signature its export declares (the conformance tests call each).
      infra_probe: how the infra validator probes the served candidate.
      offline_evaluator: ``evaluate(model_dir, data_pattern, batch_size, progress, **options) ->
        dict`` of metrics, for ``fashion evaluate``.
      quality_metric, baseline_metric: the offline evaluator's headline figure and the figure a
        model that ignores the image reaches on the same records (majority class, frequent
        tags, ...), printed side by side; a model that learned beats the baseline.
      report: ``report(evaluation_uri, model_uri) -> trainer.evaluation.reports.
        EvaluationSummary``: what its evaluation says (metrics per slice, failed thresholds)
        and the sections of its evaluation report; the run summary reads it too.
      headline_metrics: the metrics the run summary prints for it.
      extra_components: components its branch adds.
      accelerator_case: ``case(config, source_size) -> trainer.checks.AcceleratorCase`` for
        ``scripts/check_accelerator_training.py`` (None: the family is not checked there).
      benchmark_cases: ``cases(source_size) -> [trainer.checks.BenchmarkCase]`` for
        ``scripts/benchmark_builders.py`` (None: not benchmarked).
      example_source: ``source(family_config, examples) -> component or None``: a component
        that derives the examples the family trains and is evaluated on from the records (e.g.
        one example per garment box); its output ``examples`` then feeds the family's own
        Transform (with its fragment only), Trainer, evaluator and infra validator. None (or
        a source returning None for the config): the records themselves.
      catalog_index: with a :class:`CatalogIndexSpec`, the pipeline indexes the catalog with
        each model the family pushes (an embedding family), and the server searches it.
      warm_start: its trainer can start from its latest blessed model (``warm_start`` in its
        config; the pipeline then gives the Trainer that model as ``base_model``).
    """

    name: str
    config_class: type
    presets: dict
    run_fn: str
    transform_fragment: Optional[str]
    evaluation: EvaluationSpec
    signatures: tuple
    offline_evaluator: str
    quality_metric: str
    baseline_metric: str
    report: str
    headline_metrics: tuple = ()
    infra_probe: InfraProbe = InfraProbe()
    extra_components: tuple = ()
    accelerator_case: Optional[str] = None
    benchmark_cases: Optional[str] = None
    example_source: Optional[str] = None
    catalog_index: Optional[CatalogIndexSpec] = None
    warm_start: bool = False

    def __post_init__(self):
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"family name {self.name!r} must be a lower-case identifier")
        missing = {"smoke", "default", "full"} - set(self.presets)
        if missing:
            raise ValueError(f"family {self.name} has no preset for {sorted(missing)}")
        if sum(extra.report_section for extra in self.extra_components) > 1:
            raise ValueError(f"family {self.name}: at most one extra component may write a "
                             "report section")
        if self.infra_probe.signature not in {s.name for s in self.signatures}:
            raise ValueError(f"family {self.name}: the infra probe's signature "
                             f"{self.infra_probe.signature!r} is not among its signatures")

    @property
    def node_prefix(self) -> str:
        """The prefix of its pipeline nodes' ids: ``dual_encoder`` → ``DualEncoder``."""
        return "".join(part.capitalize() for part in self.name.split("_"))

    def node_id(self, step: str) -> str:
        """The id of its ``step`` node, e.g. ``CategoryTrainer``."""
        return f"{self.node_prefix}{step}"

    def preset(self, profile: str):
        """Its config for ``profile``."""
        if profile not in self.presets:
            raise ValueError(f"family {self.name} has no preset for profile {profile!r}")
        return self.presets[profile]()

    def config_from_dict(self, data: dict):
        """Its config rebuilt from ``dataclasses.asdict`` output."""
        return self.config_class.from_dict(data)


@dataclasses.dataclass(frozen=True)
class CompositeSpec:
    """A model built from several families' pushed models, served beside them.

    With ``builder`` — ``build(model_dirs: {family: SavedModel dir}, export_dir: str,
    warmup_images: [bytes]) -> export_dir`` — the pipeline wires the generic ComposeModel
    component (after every one of ``families`` has its Pusher), then a ServingInfraValidator
    asking as ``infra_probe`` says, and a Pusher to the serving folder ``name``. With
    ``factory`` instead — ``factory(config, inputs) -> [components]``, ``inputs`` mapping each
    family to its channels ``{"model", "blessing", "pushed_model", "examples"}`` — the composite
    wires nodes of its own. Either way it is wired only when every one of ``families`` is
    trained.
    """

    name: str
    families: tuple
    factory: str = ""
    builder: str = ""
    signatures: tuple = ()
    infra_probe: InfraProbe = InfraProbe()

    def __post_init__(self):
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"composite name {self.name!r} must be a lower-case identifier")
        if bool(self.factory) == bool(self.builder):
            raise ValueError(f"composite {self.name} needs a builder or a factory (one of them)")
        if self.builder and self.infra_probe.signature not in {s.name for s in self.signatures}:
            raise ValueError(f"composite {self.name}: the infra probe's signature "
                             f"{self.infra_probe.signature!r} is not among its signatures")

    @property
    def node_prefix(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))

    def node_id(self, step: str) -> str:
        """The id of its ``step`` node, e.g. ``GarmentsPusher``."""
        return f"{self.node_prefix}{step}"


def classify_signature(name: str) -> SignatureSpec:
    """A TF Serving classify signature on serialized tf.Examples."""
    return SignatureSpec(name, CLASSIFY_INPUTS, EXAMPLES, CLASSIFY_METHOD)


def images_signature(name: str) -> SignatureSpec:
    """A predict signature on encoded image bytes."""
    return SignatureSpec(name, IMAGES_INPUT, IMAGES)


def examples_signature(name: str) -> SignatureSpec:
    """A predict signature on serialized tf.Examples."""
    return SignatureSpec(name, EXAMPLES_INPUT, EXAMPLES)

