"""alignkit: align language models with human feedback, and check that the alignment holds.

Importing the package is cheap on purpose: submodules (``alignkit.losses``, ``alignkit.data``, ...)
pull in their own dependencies, so pure loss code needs torch alone.
"""

__version__ = "0.1.0"
