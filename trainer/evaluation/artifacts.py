"""TFX artifact types a family's extra components share with the generic report."""

from tfx import types


class ReportSection(types.Artifact):
    """A part of a family's evaluation report made by an extra component: ``section.html`` (an
    HTML fragment) and the files it refers to, all in the artifact's folder."""

    TYPE_NAME = "fashion.ReportSection"  # KFP v2 needs "namespace.TypeName"


SECTION_HTML = "section.html"
