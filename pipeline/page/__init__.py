"""The result page: a static HTML page per job (and a grid per batch) built from the published files.

`content` reads what was published into typed records, `render` turns them into HTML (Jinja2, autoescaped),
`turntable` makes the animated WebP, `viewer` finds the vendored 3D viewer, `publish` writes it all under
results/ for the publish and report steps. docs/result-page.md says why it is built this way.
"""
