"""Media of the field side (issue 18): photos checked from their bytes, kept in a store, served in scope."""
