"""
.. include:: how-needle-works.md
"""
# The guide's page in the API reference: pdoc renders this module's docstring, which
# includes docs/how-needle-works.md (kept as markdown so it also reads well on its own).
