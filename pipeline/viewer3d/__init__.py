"""Phase 4 (viewer3d): the textured GLB of the dressed body, its angle renders and the published result."""

from pipeline.viewer3d.glb import glb_summary, textured_glb

__all__ = ["glb_summary", "textured_glb"]
