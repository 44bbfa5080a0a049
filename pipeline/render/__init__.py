"""The software renderer: rasterize (torch, CPU), shade (numpy), and the 8 turntable views.

Import the submodules directly; none imports torch at module level.
"""
