"""Export bundles: one zip a regulator can verify offline (see assets/FORMAT.md)."""
