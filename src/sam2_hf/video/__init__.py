"""Video tracking: frame sources, the video predictor and result writers."""
