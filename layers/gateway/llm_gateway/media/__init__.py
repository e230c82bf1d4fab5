"""Media helpers: type detection from bytes, and small real media files for the mock provider."""
