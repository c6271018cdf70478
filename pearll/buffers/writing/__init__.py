"""The add hot path: the step writer and its compiled kernel."""
