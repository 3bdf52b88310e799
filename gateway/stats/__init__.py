"""Statistics over case records: levels, parameters, small-cell suppression, exports."""
