"""Models: health scorecard and its optimizer, outcome models, action-effect models."""
