"""The GPU backends: one adapter per model behind the protocols in `pipeline.backends.protocols`.

Every adapter loads from a local folder (the weights volume on Modal, `dropfit weights pull` elsewhere) and never
downloads; its pre- and post-processing are plain functions with their own tests; heavy imports (torch,
diffusers, transformers, insightface, ultralytics) happen inside functions only.
"""
