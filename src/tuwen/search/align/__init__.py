"""Contrastive text↔photo alignment: the shared space that lets a typed query find products by their photos.

:mod:`~tuwen.search.align.aligner` learns it from stored text and photo vectors (InfoNCE heads + CCA);
:mod:`~tuwen.search.align.workspace` trains it on a workspace's (title, photo) pairs, saves it, configures a local
CLIP checkpoint instead, and loads it for search.
"""

from tuwen.search.align.aligner import AlignConfig, Aligner, fit_cca, retrieval_metrics
from tuwen.search.align.workspace import (
    AlignmentModel,
    align_folder,
    align_workspace,
    ensure_image_features,
    image_features,
    load_alignment,
    load_pairs,
)

__all__ = ["AlignConfig", "Aligner", "AlignmentModel", "align_folder", "align_workspace", "ensure_image_features",
           "fit_cca", "image_features", "load_alignment", "load_pairs", "retrieval_metrics"]
