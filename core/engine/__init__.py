"""The check engine: key intake, the catalogue, probing, verdicts, remediation and the result types.

It knows nothing of the store, the features or the UI."""
