"""The deployable part: a bundle's manifest, loading and predicting, writing a bundle, and predict.

Nothing here imports optuna, the study, or the training loop (``runners.training``); building
a member's network uses ``runners.models`` only. A machine that serves predictions needs this
package, ``search.data`` (to decode photos as training did), torch and timm, or onnxruntime alone
for the ONNX backend.

    from search.deploy import Bundle
    probs = Bundle.load("exports/age_cutoff").predict_proba(["photo.jpg"], backend="onnx")
"""

from __future__ import annotations

from search.deploy.bundle import Bundle
from search.deploy.manifest import (
    FORMAT_VERSION,
    BundleError,
    InputSpec,
    Manifest,
    Member,
    MemberPreprocessing,
)

__all__ = [
    "FORMAT_VERSION",
    "Bundle",
    "BundleError",
    "InputSpec",
    "Manifest",
    "Member",
    "MemberPreprocessing",
]
