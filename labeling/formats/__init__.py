"""File formats in and out: Label Studio JSON, JSON Lines (trace log v1 or plain items), CSV."""
