"""FAISS retrieval of videos and moments: build/update an index folder, search it."""

from .layout import IndexFolderError
from .reader import DEFAULT_INDEX, Hit, Index
from .writer import IndexReport, update_index, update_index_from_features

__all__ = ["DEFAULT_INDEX", "Hit", "Index", "IndexFolderError", "IndexReport", "update_index",
           "update_index_from_features"]
