"""Raw records -> curated cases: ingest, cohort rules, ICD-10, regimens, splits, synthetic exports."""
