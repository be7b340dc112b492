"""Models of the drills app."""
