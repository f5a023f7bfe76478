"""cvcourse: the tested helper package of a Jupyter-first computer vision course in PyTorch.

Submodules are imported on demand (``from cvcourse import config, train``) so that
``import cvcourse`` stays cheap.
"""

__version__ = "0.2.0"
