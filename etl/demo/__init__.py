"""A reproducible demo city (grids, communities, towns, posts, places, events) inside any boundary."""

from etl.demo.city import DemoCity, build_demo_city

__all__ = ["DemoCity", "build_demo_city"]
