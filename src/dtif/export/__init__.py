"""Export to and import from other tools. `nir` is imported only when these functions run."""

from dtif.export.nir_export import export_nir
from dtif.export.nir_import import import_nir

__all__ = ["export_nir", "import_nir"]
