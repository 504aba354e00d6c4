"""Evidence on data: routing tables, cached prompt vectors, and replays through the real Router."""

from .embeddings import lookup_encoder, table_vectors
from .replay import ReplayRun, replay
from .scoring import score_table
from .table import RoutingTable, bundled_table_path, load_table

__all__ = ["ReplayRun", "RoutingTable", "bundled_table_path", "load_table", "lookup_encoder", "replay",
           "score_table", "table_vectors"]
