"""The lock around the process-wide random generators that some explainer libraries draw from.

shap's KernelExplainer and PermutationExplainer and alibi's AnchorTabular and CounterfactualProto draw from
numpy's global generator, DiCE's random sampler from Python's ``random``. A seeded explanation sets the seed
and then draws; if another thread draws in between, neither explanation is the one its seed promises, and
neither reproduces. So every back-end that seeds a global generator holds this lock from the seed to its last
draw. The embedded pool computes in child processes, one batch at a time each, where the lock is never
contended; it matters when explanations run in threads (``RATIONALE_EXPLAIN_PROCESSES=0``).
"""

from __future__ import annotations

import threading

GLOBAL_RANDOM = threading.RLock()
