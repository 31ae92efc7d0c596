"""Hybrid search: full text and vectors, fused by RRF in one statement.

Design decision: the fusion happens in PostgreSQL, in one SQL statement, so the
same filter applies to both arms, the caller gets one round trip, and the
candidates never leave the server.  The statement is::

    WITH vec AS (the n nearest by vector distance, numbered 1..n),
         txt AS (the n best full-text matches by ts_rank_cd, numbered 1..n)
    SELECT documents, distance, score
    FROM vec FULL OUTER JOIN txt USING (id) JOIN documents ...
    ORDER BY w_v / (rrf_k + vec.rank) + w_t / (rrf_k + txt.rank) DESC

Reciprocal rank fusion (Cormack et al., 2009) needs no score normalisation:
a document missing from one arm simply gets no contribution from it.  The text
arm matches and ranks (``ts_rank_cd``, only for the rows the GIN index
matched) the model's full-text layout: the stored ``text_search`` column by
default, or, for a model declared ``full_text_search = "expression"``,
``to_tsvector('english', text)`` spelled like the indexed expression (so the
planner uses the index; the tsvector is then computed again for every matched
row, the price of that layout on broad queries); the query goes through
``websearch_to_tsquery``, so user input such as ``"exact phrase" -excluded or
other`` is safe and never a syntax error.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from sqlalchemy import Float, cast, func, literal, select
from sqlalchemy.dialects.postgresql import REGCONFIG

from vectorstore._target import Target
from vectorstore.errors import ConfigurationError, ValidationError
from vectorstore.models import TEXT_SEARCH_CONFIG, full_text_layout, text_search_vector
from vectorstore.results import ResultSet, SearchResult

from .options import SearchOptions
from .plan import plan_search
from .settings import settings_scope
from .statement import build_statement, distance_expression, where_clause

__all__ = ["DEFAULT_RRF_K", "check_fusion", "hybrid_search"]

#: The RRF constant from the original paper; damps the weight of the top ranks.
DEFAULT_RRF_K = 60


def check_fusion(
    text: Any,
    opts: SearchOptions,
    rrf_k: Any = DEFAULT_RRF_K,
    candidates: Any = None,
    vector_weight: Any = 1.0,
    text_weight: Any = 1.0,
    model: Any = None,
) -> None:
    """Refuse bad hybrid arguments before anything is embedded or read (ValidationError).

    A ``model`` declared with ``full_text_search = False`` has no full-text
    index (or one with an unknown layout): ConfigurationError.
    """
    if model is not None and full_text_layout(model) is False:
        raise ConfigurationError(
            f"{model.__name__} is declared with full_text_search = False (no full-text "
            "index); hybrid search needs it: use nearest(), or declare the model with it"
        )
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("hybrid search needs a non-empty query text")
    for name, value in (("rrf_k", rrf_k), ("candidates", candidates)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value <= 0):  # fmt: skip
            raise ValidationError(f"{name} must be a positive integer, got {value!r}")
    for name, weight in (("vector_weight", vector_weight), ("text_weight", text_weight)):
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise ValidationError(f"{name} must be a non-negative number, got {weight!r}")
    if opts.join is not None:
        raise ValidationError("hybrid search does not take join=; use nearest_query() and join")


def hybrid_search(
    target: Target[Any],
    text: str,
    *,
    vector: Any,
    opts: SearchOptions,
    rrf_k: int = DEFAULT_RRF_K,
    candidates: int | None = None,
    vector_weight: float = 1.0,
    text_weight: float = 1.0,
) -> ResultSet[Any]:
    """Fuse full-text and vector rankings of ``text`` by RRF, in one statement.

    Args:
        text: the full-text query (web search syntax).
        vector: the validated query vector of the vector arm (the repository
            embeds ``text`` when the caller gave no vector).
        opts: nearest's options (k, metric, filter, offset, ef_search, ...).
        rrf_k: the RRF constant.
        candidates: rows taken from each arm (default ``max(4 * (k + offset), 40)``).
        vector_weight, text_weight: weights of the two arms in the fused score.

    Returns:
        Hits ordered by fused score; ``score`` is the RRF score, ``distance`` the
        vector distance, ``extra`` a dict with ``vector_rank`` and ``text_rank``
        (None when the document was not in that arm's candidates).
    """
    check_fusion(text, opts, rrf_k, candidates, vector_weight, text_weight, model=target.model)
    vec = vector
    model = target.model
    sessions = target.sessions
    wanted = opts.k + opts.offset
    n = candidates or max(4 * wanted, 40)
    started = time.perf_counter()
    with sessions.read("hybrid search") as session:
        arm_opts = replace(opts, k=n, offset=0, max_distance=None, mmr=None)
        plan = plan_search(target, vec, arm_opts, conn=session.connection())
        assert plan is not None
        # The vector arm: nearest's own statement for the chosen strategy.
        arm_opts = replace(plan.options, precision="vector", with_embedding=True)
        arm = build_statement(target, vec, arm_opts, plan.strategy)
        arm_sub = arm.with_only_columns(model.id, arm.selected_columns.distance).subquery()
        vec_cte = select(
            arm_sub.c.id,
            func.row_number().over(order_by=(arm_sub.c.distance, arm_sub.c.id)).label("rank"),
        ).cte("vec")
        tsquery = func.websearch_to_tsquery(cast(literal(TEXT_SEARCH_CONFIG), REGCONFIG), text)
        document = text_search_vector(model)
        relevance = func.ts_rank_cd(document, tsquery)
        txt_sub = (
            select(model.id, relevance.label("relevance"))
            .where(*where_clause(target, opts), document.bool_op("@@")(tsquery))
            .order_by(relevance.desc(), model.id)
            .limit(n)
            .subquery()
        )
        txt_cte = select(
            txt_sub.c.id,
            func.row_number()
            .over(order_by=(txt_sub.c.relevance.desc(), txt_sub.c.id))
            .label("rank"),
        ).cte("txt")
        score = func.coalesce(
            cast(literal(float(vector_weight)), Float) / (rrf_k + vec_cte.c.rank), 0.0
        ) + func.coalesce(cast(literal(float(text_weight)), Float) / (rrf_k + txt_cte.c.rank), 0.0)
        fused = (
            select(
                func.coalesce(vec_cte.c.id, txt_cte.c.id).label("id"),
                score.label("score"),
                vec_cte.c.rank.label("vector_rank"),
                txt_cte.c.rank.label("text_rank"),
            )
            .select_from(vec_cte.outerjoin(txt_cte, vec_cte.c.id == txt_cte.c.id, full=True))
            .subquery()
        )
        distance = distance_expression(
            model.embedding, vec, opts.metric, dimension=target.dimension
        )
        stmt = (
            select(
                model,
                distance.label("distance"),
                fused.c.score,
                fused.c.vector_rank,
                fused.c.text_rank,
            )
            .join(fused, model.id == fused.c.id)
            .order_by(fused.c.score.desc(), distance, model.id)
            .limit(wanted)
        )
        with settings_scope(session, plan.settings, owned=sessions.owns_reads):
            rows = session.execute(stmt).all()
    hits = [
        SearchResult(doc, float(dist), float(sc),
                     {"vector_rank": None if vr is None else int(vr),
                      "text_rank": None if tr is None else int(tr)})
        for doc, dist, sc, vr, tr in rows
    ][opts.offset :]  # fmt: skip
    if opts.max_distance is not None:
        hits = [h for h in hits if h.distance <= opts.max_distance]
    return ResultSet(
        results=tuple(hits), k=opts.k, strategy="hybrid", metric=opts.metric,
        settings=dict(plan.settings), reason=f"RRF of full text and {plan.strategy} vector arm",
        estimated_rows=plan.estimated_rows, counted_rows=plan.counted_rows,
        elapsed_s=time.perf_counter() - started,
    )  # fmt: skip
