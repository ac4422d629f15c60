"""Training data: datasets over video folders, and synthetic motion videos."""
