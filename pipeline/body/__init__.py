"""The parametric body: anny loaded once from a project cache, fitted to a photo's landmarks, measured.

- `anny_model`: builds and loads anny (torch and anny are imported inside functions only); `prepare`.
- `fit.fit_body`: poses, shapes and scales anny to a `PersonObservation`; the pieces it runs on are
  `targets` (what to aim at), `initial` (closed-form start), `objective` (the loss), `rig`, `chain` and
  `shape` (an exact, fast forward for the inner loop).
- `measure.measure`: sizes read off the fitted rest mesh (`slices`: horizontal cross-sections).
- `silhouette`: the fitted body drawn back into the photo, mask IoU, reprojection error.
"""
