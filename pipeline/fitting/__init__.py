"""Phase 3, fitting: the avatar and the garment analysis to a fitted, dressed, rendered body.

`fit_report.fit_report(measurements, garment)` is the physics-to-prompt (P2P) fit analysis: ease per region,
a fit label, a recommended size and prompt cues (`contracts.FitReport`). Pure functions, no model loads.
"""
