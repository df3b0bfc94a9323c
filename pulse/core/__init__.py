"""What every stage shares: the settings, the event contract, the DuckDB and Spark warehouses, and small
utilities (file modes, gzip members, the progress bar, process records, test kill points). Imports no other
package of pulse, nor ``ml``, ``expectations`` or ``orchestration``."""
