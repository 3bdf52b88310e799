"""Statistics over the complaints cases: counting, small-cell suppression, presentation."""
