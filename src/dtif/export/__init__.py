"""Export to and import from other tools. `nir` is imported only when these functions run."""

from dtif.export.nir import export_nir, import_nir

__all__ = ["export_nir", "import_nir"]
