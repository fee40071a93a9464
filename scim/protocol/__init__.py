"""Pure SCIM protocol core: errors, filters, attribute paths, PATCH parsing."""
