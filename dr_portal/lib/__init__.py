"""Cross-app helpers without models. Importable without configuring Django where noted."""
