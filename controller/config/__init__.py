"""The site file: YAML → validated, frozen :class:`controller.model.Site`."""

from controller.config.loader import LoadedSite, load_site, load_site_text
from controller.config.problems import ConfigError, Problem

__all__ = ["ConfigError", "LoadedSite", "Problem", "load_site", "load_site_text"]
