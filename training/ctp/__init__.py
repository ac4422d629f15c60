"""CtP (Catch-the-Patch): checkpoint conversion; the pretraining recipe lands next."""
