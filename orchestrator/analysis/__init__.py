"""Models of a study's trials; for now the parameter importance the review artifacts log (``importance``)."""
