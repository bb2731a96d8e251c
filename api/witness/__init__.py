"""`rationale witness serve`: a C2SP tlog-witness an auditor runs on their own machine (own key, own DB)."""
