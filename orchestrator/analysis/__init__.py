"""Models of a study's trials: the evidence ``space refine`` decides from, and parameter importance.

``evidence`` fits a Gaussian process of the usable trials and turns it into ``orchestrator.spaces.refine``'s
``Evidence`` (per parameter: partial dependence with its uncertainty, the chance a region holds a better
value, importance); ``importance`` is the importance the review artifacts log, computed by the same model.
numpy and scikit-learn are imported inside the functions that fit (``surrogate``), so importing this
package stays light; nothing here imports ray, torch or mlflow.
"""
