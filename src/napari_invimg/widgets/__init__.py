"""napari dock widgets (floor 4): Forward model, Simulate measurement, Reconstruct.

Every widget runs long work through :mod:`napari_invimg.widgets._runner` and builds forward models and
noise with :mod:`napari_invimg.widgets._models`.
"""
