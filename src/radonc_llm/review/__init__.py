"""The clinical review web app: blinded, auditable review of generated regimens.

Data flows in this order: `study` (cases + prediction files -> study.json with a seeded,
blinded assignment) -> `db` (migrations, loading the study) -> `app` (the reviewer pages,
`accounts` for sign-in, `ratings` for saving with an audit trail) -> `export` (ratings and
`review_metrics.json`, computed by `metrics`).
"""
