"""The CPU body fitter: anny (Apache-2.0 code, CC0 assets) fitted to mediapipe's landmarks and mask.

Constructing it loads nothing; the model is built (or read from its cache folder) on the first `fit` or
`prepare`, under a lock, and shared by later calls. Fits run one at a time, on torch's thread count as the
process fixed it at start (`pipeline/backends/threads.py`: one thread); the fitter never changes it, since
a count set from a worker thread reaches every thread that starts after it.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.backends.protocols import PersonObservation
from pipeline.backends.table import BuildContext
from pipeline.errors import InvalidInput
from pipeline.geometry import BodyFit

if TYPE_CHECKING:
    from pipeline.body.fit import FitSettings
    from pipeline.body.rig import Rig

MIN_HEIGHT_M, MAX_HEIGHT_M = 0.5, 2.6


class AnnyBodyFitter:
    name = "anny"

    def __init__(self, cache_dir: Path | None = None, settings: FitSettings | None = None) -> None:
        from pipeline.body.anny_model import anny_version

        self.version = anny_version()
        self.cache_dir = cache_dir  # None: pipeline.body.anny_model.default_cache_dir(), resolved on first use
        self.settings = settings
        self._lock = threading.Lock()
        self._rig: Rig | None = None

    def prepare(self) -> float:
        """Build anny's cache if needed and load the model now; the seconds the cache build took."""
        from pipeline.body.anny_model import prepare

        seconds = prepare(self.cache_dir)
        self._model()
        return seconds

    def warm_up(self) -> None:
        self.prepare()

    def fit(self, person: PersonObservation, height_m: float) -> BodyFit:
        if not (math.isfinite(height_m) and MIN_HEIGHT_M <= height_m <= MAX_HEIGHT_M):
            raise InvalidInput(f"a height of {height_m} m is outside {MIN_HEIGHT_M}-{MAX_HEIGHT_M} m",
                               "give the person's height in centimetres, e.g. 172")
        from pipeline.body.fit import fit_body

        rig = self._model()
        with self._lock:
            return fit_body(rig, person, height_m, self.settings)

    def _model(self) -> Rig:
        with self._lock:
            if self._rig is None:
                from pipeline.body.anny_model import load_rig

                self._rig = load_rig(self.cache_dir)
            return self._rig


def build(ctx: BuildContext) -> AnnyBodyFitter:
    return AnnyBodyFitter(cache_dir=ctx.config.cache / "anny")
