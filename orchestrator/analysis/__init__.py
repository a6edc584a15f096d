"""What a study's trials say beyond their values: which parameters matter (``importance``), for the review of a
search and for refine alike. numpy, scikit-learn and optuna are imported inside the functions that use them."""
