"""Stage-free foundations every stage shares: column names, fingerprints, the cache folder, JSON and Hub I/O helpers."""
