"""FeedbackHandler: rate a LangChain run (a chain, an agent, one model call) by its run id."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult

from bandit_router import ConfigError, Router
from bandit_router.feedback import RunRoutes

__all__ = ["FeedbackHandler"]


class FeedbackHandler(BaseCallbackHandler):
    """Remembers which route_ids each LangChain run produced, so a score given to a run id reaches the router.

    Pass it in the run's callbacks, then rate the run (or any run inside it)::

        handler = FeedbackHandler(llm.router)
        chain.invoke(question, config={"callbacks": [handler], "run_id": run_id})
        handler.feedback(run_id, 1.0)   # rewards every routed model call made inside the run

    A call whose output the run threw away (a step that failed, then a fallback or a retry answered) is left out
    of the run's rating; rating the failed step's own run, or a run that failed as a whole, still reaches it.
    """

    run_inline = True  # keep start/end order in async runs

    def __init__(self, router: Router, max_runs: int = 100_000) -> None:
        self.runs = RunRoutes(router, max_runs)

    def feedback(self, run_id: UUID | str, score: float, source: str | None = None) -> list[str]:
        """Reward the routed calls of `run_id` (a UUID, or its string form as run ids travel over HTTP) still
        waiting for feedback; returns their route_ids. `source` names who rated (needed when the router caps
        feedback per source)."""
        if isinstance(run_id, str):
            try:
                run_id = UUID(run_id)
            except ValueError:
                raise ConfigError(f"run_id must be a UUID or its string form, got {run_id!r}") from None
        return self.runs.feedback(run_id, score, source)

    def _start(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        self.runs.start(run_id, parent_run_id)

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                       **kwargs: Any) -> None:
        self._start(run_id, parent_run_id)

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID,
                            parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._start(run_id, parent_run_id)

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                     **kwargs: Any) -> None:
        self._start(run_id, parent_run_id)

    def on_tool_start(self, serialized: Any, input_str: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                      **kwargs: Any) -> None:
        self._start(run_id, parent_run_id)

    def on_retriever_start(self, serialized: Any, query: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                           **kwargs: Any) -> None:
        self._start(run_id, parent_run_id)

    def _failed(self, error: BaseException, run_id: UUID) -> None:
        """`run_id` raised `error`: its calls' output was thrown away, unless `error` is LangGraph's control flow
        (GraphBubbleUp: a handoff to another agent, an interrupt), which keeps what the run made."""
        if not any(kind.__name__ == "GraphBubbleUp" for kind in type(error).__mro__):  # LangGraph is optional
            self.runs.failed(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._failed(error, run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._failed(error, run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._failed(error, run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._failed(error, run_id)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, parent_run_id: UUID | None = None,
                   **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                metadata = generation.message.response_metadata if hasattr(generation, "message") else {}
                if metadata.get("route_id"):
                    self.runs.record(run_id, metadata["route_id"], metadata.get("feedback_token"))
                elif metadata.get("cached"):
                    self.runs.cached(run_id)

    def on_llm_new_token(self, token: str, *, chunk: Any = None, run_id: UUID, parent_run_id: UUID | None = None,
                         **kwargs: Any) -> None:
        """A stream's first chunk carries its route: record it then, so a stream stopped early can be rated."""
        message = getattr(chunk, "message", None)
        metadata = getattr(message, "response_metadata", None) or {}
        if metadata.get("route_id"):
            self.runs.record(run_id, metadata["route_id"], metadata.get("feedback_token"))
