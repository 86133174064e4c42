"""Default column names: the contract between hf_saerl's steps (DESIGN.md section 3).

Every transform takes its column names as parameters; these are the defaults.
"""

SAE_INDICES = "sae_indices"  #: list<int32>, top-k pooled latent ids, by value descending
SAE_VALUES = "sae_values"  #: list<float32>, their pooled activations
SAE_N_TOKENS = "sae_n_tokens"  #: int32, tokens that were pooled (after truncation)
QUALITY = "quality"  #: float32, probe score, higher is better
DIFFICULTY = "difficulty"  #: float32 in [0, 1], 0 easy ... 1 hard
PASS_RATE_PRED = "pass_rate_pred"  #: float32, raw predicted pass rate (difficulty probe on pass rates)
CLUSTER_ID = "cluster_id"  #: int32, nearest centroid
CLUSTER_DISTANCE = "cluster_distance"  #: float32, distance to it
