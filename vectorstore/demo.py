"""The main job on the embedded default: embed a small corpus and answer queries.

Run with ``python -m vectorstore.demo`` (or ``make demo``).  Starts (or reuses)
the embedded PostgreSQL, migrates it, stores a few dozen sentences embedded by
the real all-MiniLM-L6-v2 model, and prints the nearest neighbours of a few
questions.  A second run finds the sentences already stored and embeds nothing.
"""

from __future__ import annotations

import sys

from sqlalchemy.orm import Session

CORPUS: dict[str, list[str]] = {
    "animals": [
        "A cat sleeps on the warm windowsill.",
        "The kitten chased a ball of yarn across the rug.",
        "Dogs are loyal companions and love long walks.",
        "The puppy buried its bone in the garden.",
        "An owl hunts mice at night.",
        "Dolphins communicate with clicks and whistles.",
        "The horse galloped across the open field.",
        "Bees collect nectar to make honey.",
    ],
    "finance": [
        "The stock market fell sharply after the interest rate decision.",
        "Bond yields rose as inflation expectations increased.",
        "The central bank kept interest rates unchanged this quarter.",
        "Quarterly earnings beat analysts' forecasts.",
        "Investors moved money into gold as a safe haven.",
        "The company announced a share buyback program.",
        "Cryptocurrency prices swung wildly over the weekend.",
        "A diversified portfolio reduces risk.",
    ],
    "cooking": [
        "Knead the dough for ten minutes until it is smooth.",
        "Simmer the tomato sauce with garlic and basil.",
        "Roast the vegetables at a high temperature until caramelised.",
        "Whisk the eggs and sugar until pale and fluffy.",
        "Season the soup with salt and freshly ground pepper.",
        "Let the bread rise in a warm place for an hour.",
        "Grill the fish skin-side down first.",
        "Fold the whipped cream gently into the chocolate.",
    ],
    "computing": [
        "PostgreSQL supports transactions with full ACID guarantees.",
        "An index speeds up queries at the cost of slower writes.",
        "Python's garbage collector frees unreachable objects.",
        "The compiler optimises loops by unrolling them.",
        "Vector databases search embeddings by similarity.",
        "A GPU accelerates matrix multiplication for neural networks.",
        "Unit tests catch regressions before they reach production.",
        "The web server returned a 404 status for the missing page.",
    ],
}

QUERIES = [
    "a kitten on a rug",
    "stock market report",
    "how do I bake bread?",
    "fast similarity search over embeddings",
]


def main() -> int:
    import vectorstore as vs

    print("starting the embedded PostgreSQL (reused if already running)...", flush=True)
    url = vs.resolve_url()
    vs.migrate(url)
    engine = vs.make_engine(url)
    embedder = vs.SentenceTransformerEmbedder()
    print(f"embedding model: {embedder.model_name}", flush=True)
    with Session(engine) as session:
        repo = vs.DocumentRepository(session, collection="demo", embedder=embedder)
        records = [
            {"text": sentence, "external_id": f"{topic}-{i}", "metadata": {"topic": topic}}
            for topic, sentences in CORPUS.items()
            for i, sentence in enumerate(sentences)
        ]
        existing = {d.external_id for d in _stored(repo)}
        fresh = [r for r in records if r["external_id"] not in existing]
        result = repo.bulk_add(fresh, on_conflict="skip")
        session.commit()
        print(
            f"stored {result.inserted} new documents, embedded {result.embedded} texts; "
            f"{len(records) - len(fresh)} were already stored; collection size {repo.count()}"
        )
        for query in QUERIES:
            print(f"\nquery: {query!r}")
            for hit in repo.nearest(query, k=3):
                topic = hit.document.metadata_.get("topic")
                print(f"  {hit.score:.3f}  [{topic}]  {hit.document.text}")
    engine.dispose()
    return 0


def _stored(repo: object) -> list[object]:
    from sqlalchemy import select

    import vectorstore as vs

    assert isinstance(repo, vs.DocumentRepository)
    with repo._read("list") as session:
        return list(
            session.scalars(
                select(repo.model).where(repo.model.collection_id == repo.collection.id)
            )
        )


if __name__ == "__main__":
    sys.exit(main())
