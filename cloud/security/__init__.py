"""Security helpers of the cloud: password hashing (and, elsewhere, tokens)."""
