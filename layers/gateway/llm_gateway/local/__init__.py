"""Local mode: the whole gateway in one process, with an embedded AWS (moto) and the mock provider."""
