"""The personas API under /api/v1/, one module per resource: `card` (a student's persona card)
and `segments` (segments, their members and the count of a tree being built)."""
