"""The risk one-map (风险一张图) page and its offline assets."""
