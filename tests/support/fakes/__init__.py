"""In-memory fakes of Ferry's ports, for tests only (production modules hold none)."""
