"""The experiment plan: a run's config resolved and checked before any job starts."""
