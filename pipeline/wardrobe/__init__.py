"""Phase 2, wardrobe: what the garment is (mask, category, colours, print, size chart, fabric).

`phase.analyse_garment(task, io, WardrobeBackends(segmenter, vision_llm))` is the phase; the other modules
are plain numpy / OpenCV steps it calls, each testable alone. Nothing here loads a model at import.
"""
